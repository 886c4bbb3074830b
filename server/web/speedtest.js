// speedsrv's browser speed test (docs/methodology.md, "Browser test"; the HTTP API: docs/web.md or the
// contract in server/web_api). Idle latency, then download, then upload, each measured by its receiver: the
// download by this page (bytes its stream readers read, binned with performance.now()), the upload by speedsrv
// (GET .../upload). Automation: ?autostart=1 starts at once; body[data-state] is "running", then "done" or
// "error" (the message shown in #error); #result holds the speedcli --json-schema document (docs/json.md);
// body[data-charts] counts the charts that drew something. Parameters for tests: ?duration=, ?omit=, ?streams=,
// ?pings= (seconds, seconds, count, count).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const now = () => performance.now() / 1000;  // seconds, monotonic
  const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, Math.max(0, seconds) * 1000));
  const finite = (v) => typeof v === 'number' && Number.isFinite(v);
  const clamp = (v, low, high) => Math.min(high, Math.max(low, v));
  const round6 = (v) => Math.round(v * 1e6) / 1e6;
  const round3 = (v) => Math.round(v * 1e3) / 1e3;

  const query = new URLSearchParams(location.search);
  function parameter(name, fallback, low, high) {
    const value = Number(query.get(name));
    return query.has(name) && Number.isFinite(value) ? clamp(value, low, high) : fallback;
  }
  const requested = {
    duration: parameter('duration', 10, 0.5, 60),
    // The warm-up speedcli users pass as --omit (its default is 0; a browser opens its connections and runs TCP
    // slow start inside the phase, so the page leaves its first second out by default).
    omit: parameter('omit', 1, 0, 5),
    streams: Math.round(parameter('streams', 4, 1, 4)),
    pings: Math.round(parameter('pings', 10, 1, 100)),
  };
  // speedcli's probe schedule (client/options.hpp: --ping-interval 0.05, --loaded-ping-interval 0.1).
  const kIdlePingInterval = 0.05;
  const kLoadedPingInterval = 0.1;
  // A probe without an answer within this long is lost, as speedcli's (3 s after the last one).
  const kProbeTimeout = 3;
  // An upload POST should take about this long: speedsrv counts a body when all of it has arrived, so a body
  // that straddles an edge of the window puts its bytes on one side; short bodies keep that error small (0.25 s
  // bodies read up to 2.3 % above the link's ceiling on the netlab), long ones keep HTTP's per-request
  // overhead small.
  const kUploadRequestSeconds = 0.1;
  const kLeastUploadChunk = 64 * 1024;
  const kDownloadRequestBytes = 32 * 1024 * 1024;

  // ---- Figures (the same definitions as common/statistics.cpp and common/latency.cpp) ----

  // Percentile by linear interpolation between closest ranks (Hyndman & Fan type 7), as common/statistics.
  function percentileOfSorted(sorted, fraction) {
    if (sorted.length === 0) return null;
    const position = fraction * (sorted.length - 1);
    const below = Math.floor(position);
    const above = Math.min(below + 1, sorted.length - 1);
    return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
  }
  function summary(values) {
    if (values.length === 0) return null;
    const sorted = values.slice().sort((a, b) => a - b);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const variance = values.reduce((s, v) => s + (v - mean) * (v - mean), 0) / values.length;
    return { min: round3(sorted[0]), median: round3(percentileOfSorted(sorted, 0.5)), mean: round3(mean),
             p90: round3(percentileOfSorted(sorted, 0.9)), p99: round3(percentileOfSorted(sorted, 0.99)),
             max: round3(sorted[sorted.length - 1]), stddev: round3(Math.sqrt(variance)) };
  }
  // Mean absolute difference of consecutive samples in send order (speedcli's jitter_ms).
  function jitter(values) {
    if (values.length < 2) return 0;
    let sum = 0;
    for (let i = 1; i < values.length; ++i) sum += Math.abs(values[i] - values[i - 1]);
    return round3(sum / (values.length - 1));
  }
  // The IETF responsiveness draft's single-sided trimmed mean at the 95th percentile, exactly as
  // common/statistics.cpp trimmed_mean(samples, 0, 0.95): ranks [0, ceil(0.95 n)).
  function trimmedMean95(values) {
    if (values.length === 0) return 0;
    const sorted = values.slice().sort((a, b) => a - b);
    const last = Math.ceil(0.95 * sorted.length);
    return sorted.slice(0, last).reduce((s, v) => s + v, 0) / last;
  }
  const rpmFor = (rttMs) => (rttMs > 0 ? 60000 / rttMs : 0);
  // common/latency.hpp stable_part: RPM uses the window's last kStableSeconds = 4 s, never more than its half.
  const kStableSeconds = 4;
  function stablePart(from, to) {
    return [to - Math.min(kStableSeconds, Math.max(0, to - from) / 2), to];
  }
  // DSLReports' bands on the latency increase (ms), as common/latency.cpp grade_for_increase and
  // docs/methodology.md "Bufferbloat grade".
  function gradeFor(increaseMs) {
    if (increaseMs < 5) return 'A+';
    if (increaseMs < 30) return 'A';
    if (increaseMs < 60) return 'B';
    if (increaseMs < 200) return 'C';
    if (increaseMs < 400) return 'D';
    return 'F';
  }
  // The figures above, for the test that holds them to common/'s definitions at chosen inputs (bands' edges,
  // ties, short series): tests/integration/test_web_page.cpp. They keep no state and are frozen.
  window.speedtestFigures = Object.freeze({ percentileOfSorted, trimmedMean95, jitter, rpmFor, stablePart, gradeFor });

  // ---- Display ----

  const rateUnits = [[1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s'], [1, 'bit/s']];
  function rate(bitsPerSecond) {
    if (!finite(bitsPerSecond)) return '–';
    const [scale, name] = rateUnits.find(([s]) => bitsPerSecond >= s) || rateUnits[rateUnits.length - 1];
    return (bitsPerSecond / scale).toPrecision(3) + ' ' + name;
  }
  function ms(value) {
    if (!finite(value)) return '–';
    return value.toFixed(value < 1 ? 3 : value < 10 ? 2 : 1) + ' ms';
  }
  function add(parent, tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    parent.appendChild(node);
    return node;
  }
  function card(label, value, note) {
    const box = add($('cards'), 'div', 'card');
    add(box, 'div', 'label', label);
    add(box, 'div', 'value', value);
    if (note) add(box, 'div', 'note', note);
  }
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  function setPhase(text) {
    $('phase').textContent = text;
  }
  let gaugeTop = 1;
  function setGauge(bitsPerSecond, label) {
    $('gauge-rate').textContent = rate(bitsPerSecond);
    $('gauge-label').textContent = label;
    gaugeTop = Math.max(gaugeTop, bitsPerSecond || 0);
    $('gauge-fill').style.width = (100 * clamp((bitsPerSecond || 0) / gaugeTop, 0, 1)).toFixed(1) + '%';
  }

  // Live charts on one timeline: seconds since the test started.
  let throughputChart = null;
  let latencyChart = null;
  const lines = { download: [], upload: [] };
  const probesOf = { idle: [], download: [], upload: [] };
  function makeCharts() {
    if (typeof Chart === 'undefined') throw new Error('Chart.js did not load (/chart.min.js)');
    Chart.defaults.color = css('--muted');
    Chart.defaults.borderColor = css('--line');
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    const base = { responsive: true, maintainAspectRatio: false, animation: false, parsing: false };
    const axis = (title, extra) => Object.assign({ type: 'linear', title: { display: true, text: title } }, extra);
    const step = (name, color) => ({ label: name, data: lines[name], borderColor: color, backgroundColor: color,
                                     borderWidth: 2, pointRadius: 0, stepped: 'after',
                                     segment: { borderDash: (ctx) => (ctx.p0.raw && ctx.p0.raw.omitted ? [5, 5] : undefined) } });
    throughputChart = new Chart($('throughput-chart'), {
      type: 'line',
      data: { datasets: [step('download', css('--download')), step('upload', css('--upload'))] },
      options: Object.assign({}, base, { scales: { x: axis('seconds since the start', { min: 0 }),
                                                   y: axis('Mbit/s', { beginAtZero: true }) } }),
    });
    const dots = (name, label) => ({ label, data: probesOf[name], borderColor: css('--' + name),
                                     backgroundColor: css('--' + name), pointRadius: 2, showLine: false });
    latencyChart = new Chart($('latency-chart'), {
      type: 'scatter',
      data: { datasets: [dots('idle', 'idle'), dots('download', 'under download'), dots('upload', 'under upload')] },
      options: Object.assign({}, base, { scales: { x: axis('seconds since the start', { min: 0 }),
                                                   y: axis('ms', { beginAtZero: true }) } }),
    });
  }
  function redraw() {
    if (throughputChart) throughputChart.update('none');
    if (latencyChart) latencyChart.update('none');
  }
  // Whether a chart put any pixel on its canvas (the alpha of one pixel is not 0), as the --report page checks.
  function drewSomething(canvas) {
    if (canvas.width === 0 || canvas.height === 0) return false;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return pixels.some((value, i) => i % 4 === 3 && value !== 0);
  }

  // ---- The API (server/web: POST /api/sessions, then .../ping, .../download, .../upload, DELETE) ----

  async function apiError(response) {
    let text = '';
    try {
      const body = await response.json();
      text = body && body.error ? body.error : '';
    } catch (e) {
      text = '';
    }
    return new Error('speedsrv answered ' + response.status + (text ? ': ' + text : ''));
  }
  async function api(method, path, options) {
    const response = await fetch(path, Object.assign({ method, cache: 'no-store' }, options || {}));
    if (!response.ok) throw await apiError(response);
    return response;
  }

  // ---- Latency probes: a GET .../ping each, on its own request ----

  // One probe: the application round trip from calling fetch to its answer (what speedcli's RPM uses), and the
  // round trip on the wire when Resource Timing has it (request sent to first byte of the answer: without the
  // browser's queueing or a new connection's handshake).
  let probeNumber = 0;
  async function probe(base) {
    const url = base + '/ping?n=' + ++probeNumber;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), kProbeTimeout * 1000);
    const sent = now();
    try {
      const response = await fetch(url, { cache: 'no-store', signal: controller.signal });
      const answered = now();
      if (response.status !== 204) throw await apiError(response);
      const application = (answered - sent) * 1000;
      let wire = application;
      const entry = performance.getEntriesByName(new URL(url, location.href).href).pop();
      if (entry && entry.requestStart > 0 && entry.responseStart >= entry.requestStart) {
        wire = entry.responseStart - entry.requestStart;
      }
      return { sent, application, wire };
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
      return { sent, lost: true };
    } finally {
      clearTimeout(timer);
      // The timing buffer holds 250 entries by default; every request adds one.
      performance.clearResourceTimings();
    }
  }

  // Probes every `interval` (the next waits for the previous: a browser has 6 connections per host, so probes
  // in flight at once would queue behind the load's), until stop() is true.
  async function probeLoop(base, interval, count, stop, onProbe) {
    let next = now();
    for (let i = 0; count === null || i < count; ++i) {
      if (stop()) break;
      await sleep(next - now());
      if (stop()) break;
      const result = await probe(base);
      onProbe(result);
      next = Math.max(next + interval, now());
    }
  }

  // ---- Phases ----

  // Binned bytes: bins of `interval` seconds from time 0.
  function binner(interval, streams) {
    const bins = [];
    return {
      bins,
      add(seconds, stream, bytes) {
        const index = Math.floor(seconds / interval);
        while (bins.length <= index) bins.push({ bytes: 0, streams: new Array(streams).fill(0) });
        bins[index].bytes += bytes;
        bins[index].streams[stream] += bytes;
      },
      // Empty bins up to `count`: time the receiver read nothing in is part of its window, not missing.
      pad(count) {
        while (bins.length < count) bins.push({ bytes: 0, streams: new Array(streams).fill(0) });
      },
    };
  }

  // The direction object of speedcli's JSON from intervals on the receiver's clock (start, end, bytes, streams).
  function direction(intervals, omit, duration, measuredBy) {
    const epsilon = 1e-9;
    const window = intervals.filter((i) => i.start >= omit - epsilon && i.end <= omit + duration + epsilon);
    const warmUp = intervals.filter((i) => i.end <= omit + epsilon);
    const bytes = window.reduce((s, i) => s + i.bytes, 0);
    // The window's planned length, or less when the load ended before it (a receiver may leave out empty bins).
    const last = intervals.reduce((m, i) => Math.max(m, i.end), 0);
    const seconds = clamp(last - omit, 0, duration);
    const out = intervals.filter((i) => i.start < omit + duration - epsilon).map((i) => {
      const o = { start: round6(i.start), end: round6(i.end), bytes: i.bytes,
                  bits_per_second: (8 * i.bytes) / Math.max(i.end - i.start, 1e-9), omitted: i.end <= omit + epsilon };
      if (i.streams) o.streams = i.streams;
      return o;
    });
    return {
      bits_per_second: seconds > 0 ? (8 * bytes) / seconds : null,
      bytes, seconds: round6(seconds), omitted_seconds: round6(Math.min(omit, last)),
      omitted_bytes: warmUp.reduce((s, i) => s + i.bytes, 0), measured_by: measuredBy, intervals: out,
    };
  }

  // Latency object (docs/json.md "Latency objects") from probes whose `t` is on the given clock.
  function latencyObject(probes) {
    const answered = probes.filter((p) => !p.lost);
    const wire = answered.map((p) => p.wire);
    const application = answered.map((p) => p.application);
    return {
      samples: answered.length, sent: probes.length, lost: probes.length - answered.length,
      rtt_ms: summary(wire), jitter_ms: jitter(wire), timestamps: 'application',
      application_rtt_ms: summary(application),
      series: { t: answered.map((p) => round6(p.t)), rtt_ms: wire.map(round3), application_rtt_ms: application.map(round3),
                lost_t: probes.filter((p) => p.lost).map((p) => round6(p.t)) },
    };
  }
  function loadedLatency(probes, omit, duration, idleMedian) {
    const inWindow = probes.filter((p) => p.t >= omit && p.t <= omit + duration);
    const latency = latencyObject(inWindow);
    latency.increase_ms = latency.rtt_ms && finite(idleMedian) ? round3(Math.max(0, latency.rtt_ms.median - idleMedian)) : null;
    latency.in_band = null;
    latency.self_probes = null;
    const [from, to] = stablePart(omit, omit + duration);
    const stable = inWindow.filter((p) => !p.lost && p.t >= from && p.t <= to).map((p) => p.application);
    const foreign = stable.length > 0 ? rpmFor(trimmedMean95(stable)) : null;
    latency.responsiveness_rpm = foreign;
    latency.responsiveness = { foreign_rpm: foreign, self_rpm: null, foreign_samples: stable.length, self_samples: 0,
                               self_source: null, stable_seconds: [round6(from), round6(to)],
                               kernel_corrected_rpm: null, kernel_self_rpm: null };
    return { latency, stable };
  }

  const state = { testStart: 0 };
  const since = (t) => t - state.testStart;

  async function idlePhase(base) {
    setPhase('Measuring idle latency…');
    // One probe first that does not count, as speedcli's: the first request pays for the connection.
    await probe(base);
    const probes = [];
    let first = null;
    await probeLoop(base, kIdlePingInterval, requested.pings, () => false, (p) => {
      if (first === null) first = p.sent;
      p.t = p.sent - first;
      probes.push(p);
      if (!p.lost) probesOf.idle.push({ x: since(p.sent), y: p.application });
    });
    redraw();
    return probes;
  }

  async function downloadPhase(base, session, streams) {
    setPhase('Measuring download…');
    const { omit, duration } = state;
    const interval = session.interval_seconds;
    const bins = binner(interval, streams);
    const controller = new AbortController();
    let zero = null;  // page time of the first byte read (the receiver's time 0)
    let end = Infinity;
    let stopped = false;
    const requestBytes = Math.max(1, Math.min(kDownloadRequestBytes, session.download_request_max_bytes,
                                              session.max_bytes ? Math.floor(session.max_bytes / (4 * streams)) : Infinity));
    async function stream(index) {
      while (!stopped) {
        const response = await fetch(base + '/download?bytes=' + requestBytes,
                                     { cache: 'no-store', signal: controller.signal });
        if (!response.ok) throw await apiError(response);
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const t = now();
          if (zero === null) {
            zero = t;
            end = zero + omit + duration;
          }
          if (t > end) {
            stopped = true;
            break;
          }
          bins.add(t - zero, index, value.byteLength);
        }
      }
    }
    const probes = [];
    const started = now();
    const running = [];
    for (let s = 0; s < streams; ++s) running.push(stream(s));
    const probing = probeLoop(base, kLoadedPingInterval, null, () => stopped, (p) => {
      probes.push(p);
      if (!p.lost) probesOf.download.push({ x: since(p.sent), y: p.application });
    });
    const live = setInterval(() => {
      if (zero === null) return;
      lines.download.length = 0;
      const complete = Math.floor((now() - zero) / interval);
      bins.bins.slice(0, complete).forEach((b, i) => {
        lines.download.push({ x: since(zero) + i * interval, y: (8 * b.bytes) / interval / 1e6, omitted: (i + 1) * interval <= omit + 1e-9 });
      });
      const recent = bins.bins.slice(Math.max(0, complete - 5), complete);
      if (recent.length > 0) setGauge((8 * recent.reduce((s, b) => s + b.bytes, 0)) / (recent.length * interval), 'download');
      redraw();
    }, 250);
    const deadline = started + omit + duration + 10;
    try {
      // Ends at the window's end (or when every stream failed); a stream that never gets a byte ends it later.
      await Promise.race([Promise.all(running), (async () => {
        while (!stopped && now() < (zero === null ? deadline : end)) await sleep(0.02);
        stopped = true;
      })()]);
      if (zero === null) throw new Error('no download byte arrived within ' + (omit + duration + 10) + ' s');
    } finally {
      stopped = true;
      controller.abort();
      clearInterval(live);
      await Promise.allSettled(running);
      await probing;
    }
    // The window ran to its end: the last bins count even when no read fell in them (reads come in bursts), or
    // the window would be cut short at the last read and its bytes divided by less time than they took.
    if (now() >= end) bins.pad(Math.round((omit + duration) / interval));
    const intervals = bins.bins.map((b, i) => ({ start: i * interval, end: (i + 1) * interval, bytes: b.bytes, streams: b.streams }));
    for (const p of probes) p.t = p.sent - zero;
    return { result: direction(intervals, omit, duration, 'client'), probes };
  }

  async function uploadPhase(base, session, streams) {
    setPhase('Measuring upload…');
    const { omit, duration } = state;
    const interval = session.interval_seconds;
    const most = session.upload_chunk_max_bytes;
    const data = new Uint8Array(most);
    for (let at = 0; at < most; at += 65536) crypto.getRandomValues(data.subarray(at, Math.min(most, at + 65536)));
    let zero = null;  // page time of the first POST's answer: speedsrv's time 0 is that body's arrival
    let end = Infinity;
    let stopped = false;
    let sent = 0;
    async function stream() {
      let size = kLeastUploadChunk;
      while (!stopped && now() < end) {
        const t = now();
        await api('POST', base + '/upload', { body: data.subarray(0, size),
                                              headers: { 'Content-Type': 'application/octet-stream' } });
        const took = now() - t;
        sent += size;
        if (zero === null) {
          zero = now();
          end = zero + omit + duration;
        }
        size = clamp(Math.round((size / Math.max(took, 1e-3)) * kUploadRequestSeconds / 4096) * 4096, kLeastUploadChunk, most);
      }
    }
    const probes = [];
    const running = [];
    for (let s = 0; s < streams; ++s) running.push(stream());
    const probing = probeLoop(base, kLoadedPingInterval, null, () => stopped, (p) => {
      probes.push(p);
      if (!p.lost) probesOf.upload.push({ x: since(p.sent), y: p.application });
    });
    let figures = null;
    const showFigures = (f) => {
      if (zero === null || !f || !Array.isArray(f.intervals)) return;
      lines.upload.length = 0;
      for (const i of f.intervals) {
        lines.upload.push({ x: since(zero) + i.start, y: (8 * i.bytes) / Math.max(i.end - i.start, 1e-9) / 1e6, omitted: i.end <= omit + 1e-9 });
      }
      const recent = f.intervals.slice(-6, -1);
      if (recent.length > 0) setGauge((8 * recent.reduce((s, i) => s + i.bytes, 0)) / (recent.length * interval), 'upload');
      redraw();
    };
    const polling = (async () => {
      while (!stopped) {
        await sleep(0.25);
        if (stopped) break;
        figures = await (await api('GET', base + '/upload')).json();
        showFigures(figures);
      }
    })();
    try {
      await Promise.all(running);
    } finally {
      stopped = true;
      await Promise.allSettled(running);
      await probing;
      await polling.catch(() => null);
    }
    // speedsrv's figures once every body has arrived: the result's.
    figures = await (await api('GET', base + '/upload')).json();
    showFigures(figures);
    for (const p of probes) p.t = p.sent - zero;
    const result = direction(figures.intervals, omit, duration, 'server');
    result.sender = { bytes: sent, retransmits: null, congestion: null };
    result.received = { bytes: figures.bytes_total, bodies: figures.bodies };
    return { result, probes };
  }

  // ---- The run ----

  let running = false;
  async function run() {
    if (running) return;
    running = true;
    $('start').disabled = true;
    $('error').hidden = true;
    $('summary').hidden = true;
    $('result-section').hidden = true;
    $('cards').textContent = '';
    for (const list of [lines.download, lines.upload, probesOf.idle, probesOf.download, probesOf.upload]) list.length = 0;
    document.body.dataset.state = 'running';
    const doc = { version: null, start_time: new Date().toISOString(),
                  server: { host: location.hostname, port: Number(location.port) || (location.protocol.startsWith('https') ? 443 : 80),
                            address: null, software: null, max_bitrate: null, max_bytes: null },
                  client: { software: 'speedsrv web page', user_agent: navigator.userAgent },
                  protocol: 'http', streams: null, parameters: null,
                  latency: { idle: null, idle_not_measured: null }, download: null, upload: null, bidirectional: null,
                  bufferbloat_grade: null, responsiveness_rpm: null, responsiveness_rpm_kernel_corrected: null, error: null };
    let base = null;
    try {
      if (!throughputChart) makeCharts();
      redraw();
      state.testStart = now();
      setPhase('Opening a session…');
      const session = await (await api('POST', '/api/sessions')).json();
      base = '/api/sessions/' + session.session;
      const software = session.server || {};
      doc.version = software.version || null;
      doc.server.software = software.software ? software.software + (software.version ? ' ' + software.version : '') : null;
      doc.server.max_bytes = session.max_bytes === undefined ? null : session.max_bytes;
      const streams = Math.min(requested.streams, session.max_streams || 1);
      // Each load (warm-up plus window) is one test of at most the server's --max-duration.
      const perDirection = Math.max(1, session.max_duration_seconds);
      // Whole intervals: the warm-up and the window are made of the receivers' bins.
      const whole = (seconds) => Math.max(1, Math.round(seconds / session.interval_seconds)) * session.interval_seconds;
      state.omit = requested.omit > 0 ? round6(whole(Math.min(requested.omit, perDirection / 4))) : 0;
      state.duration = round6(whole(Math.min(requested.duration, perDirection - state.omit)));
      doc.streams = streams;
      doc.parameters = { duration_seconds: state.duration, omit_seconds: state.omit, interval_seconds: session.interval_seconds,
                         streams, download: true, upload: true, bidirectional: false, pings: requested.pings,
                         ping_interval_seconds: kIdlePingInterval, loaded_ping_interval_seconds: kLoadedPingInterval };

      const idle = await idlePhase(base);
      doc.latency.idle = latencyObject(idle);
      const idleMedian = doc.latency.idle.rtt_ms ? doc.latency.idle.rtt_ms.median : null;

      const stable = [];
      for (const [name, phase] of [['download', downloadPhase], ['upload', uploadPhase]]) {
        const { result, probes } = await phase(base, session, streams);
        const loaded = loadedLatency(probes, state.omit, state.duration, idleMedian);
        result.latency = loaded.latency;
        stable.push(...loaded.stable);
        doc[name] = result;
      }
      const increases = ['download', 'upload'].map((d) => doc[d].latency.increase_ms).filter(finite);
      doc.bufferbloat_grade = increases.length > 0 ? gradeFor(Math.max(...increases)) : null;
      doc.responsiveness_rpm = stable.length > 0 ? rpmFor(trimmedMean95(stable)) : null;
      showSummary(doc);
      setPhase('Done.');
      document.body.dataset.state = 'done';
    } catch (e) {
      doc.error = (e && e.message) || String(e);
      $('error').textContent = 'The test failed: ' + doc.error;
      $('error').hidden = false;
      setPhase('Failed.');
      document.body.dataset.state = 'error';
    } finally {
      if (base) {
        try {
          await fetch(base, { method: 'DELETE', cache: 'no-store' });
        } catch (e) {
          // The session also ends at its deadline or idle timeout.
        }
      }
      redraw();
      const charts = [throughputChart, latencyChart].filter((c) => c);
      document.body.dataset.charts = String(charts.filter((c) => drewSomething(c.canvas)).length);
      $('result').textContent = JSON.stringify(doc, null, 1);
      $('result-section').hidden = false;
      $('start').disabled = false;
      $('start').textContent = 'Run again';
      running = false;
    }
  }

  function showSummary(doc) {
    for (const name of ['download', 'upload']) {
      const d = doc[name];
      card(name === 'download' ? 'Download' : 'Upload', rate(d.bits_per_second),
           'measured by the ' + (d.measured_by === 'client' ? 'page' : 'server') + '; warm-up ' + d.omitted_seconds + ' s apart');
    }
    const idle = doc.latency.idle;
    if (idle.rtt_ms) card('Idle latency', ms(idle.rtt_ms.median), 'median of ' + idle.samples + ' probes; jitter ' + ms(idle.jitter_ms));
    for (const name of ['download', 'upload']) {
      const l = doc[name].latency;
      if (l.rtt_ms) card('Latency under ' + name, ms(l.rtt_ms.median), finite(l.increase_ms) ? 'median; +' + ms(l.increase_ms) + ' over idle' : 'median');
    }
    if (finite(doc.responsiveness_rpm)) {
      card('Responsiveness', Math.round(doc.responsiveness_rpm).toLocaleString('en-US') + ' RPM', 'round trips per minute under load');
    }
    if (doc.bufferbloat_grade) card('Bufferbloat grade', doc.bufferbloat_grade, 'from the latency increase');
    $('summary').hidden = false;
    setGauge(doc.download.bits_per_second, 'download (window)');
  }

  $('start').addEventListener('click', run);
  $('copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('result').textContent);
      $('copy').textContent = 'Copied';
    } catch (e) {
      // Without clipboard access (plain HTTP on another host): select the text for the user to copy.
      const range = document.createRange();
      range.selectNodeContents($('result'));
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      $('copy').textContent = 'Selected: press Ctrl+C';
    }
  });
  if (query.get('autostart') === '1') run();
})();
