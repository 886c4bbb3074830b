// Placeholder for the browser test's script (docs/protocol.md, "Browser test (HTTP)").
'use strict';
document.body.dataset.state = 'ready';
