// speedcli --report's page: draws the run from the --json document in #report-data (docs/json.md). Every
// string from the document goes into the page as text, never as HTML. When done, body[data-state] is "done"
// and body[data-charts] the number of charts that drew something ("error" and a visible message otherwise):
// the browser test reads both.
'use strict';
(function () {
  const main = document.querySelector('main');
  const status = document.getElementById('status');

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent, tag, className, text) {
    const node = el(tag, className, text);
    parent.appendChild(node);
    return node;
  }
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const finite = (v) => typeof v === 'number' && Number.isFinite(v);

  const rateUnits = [[1e12, 'Tbit/s'], [1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s'], [1, 'bit/s']];
  function rateUnit(bitsPerSecond) {
    return rateUnits.find(([scale]) => bitsPerSecond >= scale) || rateUnits[rateUnits.length - 1];
  }
  function rate(bitsPerSecond) {
    if (!finite(bitsPerSecond)) return '–';
    const [scale, name] = rateUnit(bitsPerSecond);
    return (bitsPerSecond / scale).toPrecision(3) + ' ' + name;
  }
  function ms(value) {
    if (!finite(value)) return '–';
    return value.toFixed(value < 1 ? 3 : value < 10 ? 2 : 1) + ' ms';
  }

  function card(parent, label, value, note) {
    const box = add(parent, 'div', 'card');
    add(box, 'div', 'label', label);
    add(box, 'div', 'value', value);
    if (note) add(box, 'div', 'note', note);
  }

  const charts = [];
  function chart(parent, title, caption, config) {
    add(parent, 'h2', null, title);
    const holder = add(parent, 'div', 'chart');
    const canvas = add(holder, 'canvas');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', title);
    if (caption) add(parent, 'p', 'caption', caption);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
                                     parsing: false, normalized: true }, config.options);
    charts.push(new Chart(canvas, config));
  }
  function axis(title, extra) {
    return Object.assign({ type: 'linear', title: { display: true, text: title } }, extra);
  }

  const directions = ['download', 'upload'];
  const colorOf = { idle: css('--idle'), download: css('--download'), upload: css('--upload'), both: css('--both') };
  const label = (name) => name.charAt(0).toUpperCase() + name.slice(1);
  // A latency series' name: idle, under one direction's load, or under both (--bidir).
  const seriesLabel = (name) => (name === 'idle' ? 'idle' : name === 'both' ? 'under both loads' : 'under ' + name);

  function summary(doc) {
    add(main, 'h2', null, 'Summary');
    const cards = add(main, 'div', 'cards');
    for (const dir of directions) {
      const d = doc[dir];
      if (d) card(cards, label(dir), rate(d.bits_per_second), 'measured by the ' + d.measured_by);
    }
    const idle = doc.latency && doc.latency.idle;
    if (idle && idle.rtt_ms) {
      card(cards, 'Idle latency', ms(idle.rtt_ms.median),
           'median; jitter ' + ms(idle.jitter_ms) + '; ' + idle.samples + ' of ' + idle.sent + ' probes');
    }
    for (const dir of directions) {
      const latency = doc[dir] && doc[dir].latency;
      if (latency && latency.rtt_ms) {
        card(cards, 'Latency under ' + dir, ms(latency.rtt_ms.median),
             finite(latency.increase_ms) ? 'median; +' + ms(latency.increase_ms) + ' over idle' : 'median');
      }
    }
    const both = doc.bidirectional;
    if (both) {
      // --bidir: the one loaded latency of the run is the one under both loads (with --iperf3 only the upload
      // connections' in-band RTT).
      const l = both.latency || {};
      if (l.rtt_ms) {
        card(cards, 'Latency under both loads', ms(l.rtt_ms.median),
             finite(l.increase_ms) ? 'median; +' + ms(l.increase_ms) + ' over idle' : 'median');
      } else if (l.in_band && l.in_band.rtt_ms) {
        card(cards, 'Latency under both loads', ms(l.in_band.rtt_ms.median), 'median in-band TCP RTT');
      }
      card(cards, 'Both at once', finite(both.overlap_seconds) ? both.overlap_seconds.toFixed(2) + ' s' : '–',
           'the receivers\' windows overlap' + (finite(both.start_skew_seconds)
             ? '; upload started ' + ms(Math.abs(both.start_skew_seconds) * 1000) +
               (both.start_skew_seconds >= 0 ? ' after' : ' before') + ' the download'
             : ''));
    }
    if (finite(doc.responsiveness_rpm)) {
      card(cards, 'Responsiveness', Math.round(doc.responsiveness_rpm).toLocaleString('en-US') + ' RPM',
           'round trips per minute under load');
    }
    if (doc.bufferbloat_grade) card(cards, 'Bufferbloat grade', doc.bufferbloat_grade, 'from the latency increase');
  }

  const hasIntervals = (d) => d && d.intervals && d.intervals.length > 0;
  const topRate = (ds) => Math.max(...ds.flatMap((d) => d.intervals.map((i) => i.bits_per_second)).filter(finite), 1);
  // A direction's intervals as a line of steps, each from its start to its end (a point at each start, and the
  // last end), `shift` seconds later on the chart's time axis; warm-up intervals (--omit) dashed.
  function intervalLine(d, name, color, width, scale, rateOf, shift) {
    const points = d.intervals.map((i) => ({ x: i.start + shift, y: rateOf(i) / scale }));
    const last = d.intervals[d.intervals.length - 1];
    points.push({ x: last.end + shift, y: rateOf(last) / scale });
    const warmUp = (ctx) => (d.intervals[ctx.p0DataIndex].omitted ? [5, 5] : undefined);
    return { label: name, borderColor: color, backgroundColor: color, borderWidth: width, pointRadius: 0,
             stepped: 'after', data: points, segment: { borderDash: warmUp } };
  }

  // --bidir: both directions on one chart and one time axis, the download receiver's interval clock; the
  // upload's intervals (on its receiver's clock) are moved by the start skew where it is known.
  function bothThroughput(doc) {
    const both = doc.bidirectional;
    const drawn = directions.filter((dir) => hasIntervals(doc[dir]));
    if (drawn.length === 0) return;
    const [scale, unit] = rateUnit(topRate(drawn.map((dir) => doc[dir])));
    const skew = finite(both.start_skew_seconds) ? both.start_skew_seconds : 0;
    const datasets = drawn.map((dir) => intervalLine(doc[dir], label(dir), colorOf[dir], 2.5, scale,
                                                     (i) => i.bits_per_second, dir === 'upload' ? skew : 0));
    const notes = ['Both directions at once, each measured by its receiver, each interval a step; warm-up ' +
                   'intervals (--omit) are dashed. Time axis: the download receiver\'s interval clock'];
    if (finite(both.start_skew_seconds) && drawn.includes('upload')) {
      notes.push('the upload\'s intervals are placed by its start skew (' + ms(both.start_skew_seconds * 1000) + ')');
    }
    for (const dir of directions) {
      if (doc[dir] && !drawn.includes(dir)) notes.push('the ' + dir + ' has no intervals (its receiver sent none)');
    }
    chart(main, 'Download and upload throughput, at once', notes.join('; ') + '.', {
      type: 'line', data: { datasets },
      options: { scales: { x: axis('seconds', { min: 0 }), y: axis(unit, { beginAtZero: true }) } },
    });
  }

  function throughput(doc) {
    if (doc.bidirectional) {
      bothThroughput(doc);
      return;
    }
    for (const dir of directions) {
      const d = doc[dir];
      if (!hasIntervals(d)) continue;
      const [scale, unit] = rateUnit(topRate([d]));
      const line = (name, color, width, rateOf) => intervalLine(d, name, color, width, scale, rateOf, 0);
      const datasets = [line('all streams', colorOf[dir], 2.5, (i) => i.bits_per_second)];
      const streams = (d.intervals[0].streams || []).length;
      for (let s = 0; streams > 1 && s < streams; ++s) {
        const color = 'hsl(' + Math.round(120 + (200 * (s + 1)) / (streams + 1)) + ' 40% 55%)';
        datasets.push(line('stream ' + s, color, 1.2, (i) => (8 * i.streams[s]) / Math.max(i.end - i.start, 1e-9)));
      }
      chart(main, label(dir) + ' throughput per interval', 'Measured by the receiver (' + d.measured_by +
            '), each interval a step; warm-up intervals (--omit) are dashed.', {
        type: 'line', data: { datasets },
        options: { scales: { x: axis('seconds', { min: 0 }), y: axis(unit, { beginAtZero: true }) } },
      });
    }
  }

  // The latency objects with their series: idle, then under each direction's load, then under both (--bidir).
  function latencySeries(doc) {
    const out = [];
    const idle = doc.latency && doc.latency.idle;
    const loads = directions.map((dir) => [dir, doc[dir] && doc[dir].latency]);
    loads.push(['both', doc.bidirectional && doc.bidirectional.latency]);
    for (const [name, latency] of [['idle', idle], ...loads]) {
      if (latency && latency.series && latency.series.rtt_ms.length > 0) out.push([name, latency]);
    }
    return out;
  }

  function latency(doc) {
    const series = latencySeries(doc);
    if (series.length === 0) return;
    const interval = (doc.parameters && doc.parameters.ping_interval_seconds) || 0;
    const overTime = series.map(([name, l]) => ({
      label: seriesLabel(name), borderColor: colorOf[name], backgroundColor: colorOf[name],
      pointRadius: 2, showLine: false,
      // No send times (UDP idle probes): they were sent on a fixed schedule.
      data: l.series.rtt_ms.map((rtt, i) => ({ x: l.series.t ? l.series.t[i] : i * interval, y: rtt })),
    }));
    chart(main, 'Latency over time', 'Network round trips (rtt_ms) of each probe, at the time it was sent: ' +
          'idle from the first idle probe, under load on the direction\'s interval clock' +
          (doc.bidirectional ? ', under both loads from the start of the two windows\' overlap.' : '.'), {
      type: 'scatter', data: { datasets: overTime },
      options: { scales: { x: axis('seconds'), y: axis('ms', { beginAtZero: true }) } },
    });

    const values = series.map(([, l]) => l.series.rtt_ms.filter(finite).slice().sort((a, b) => a - b));
    const all = values.flat();
    const low = Math.min(...all);
    const high = Math.max(...all);
    const logarithmic = low > 0 && high / low >= 20;
    const cdf = series.map(([name], k) => ({
      label: seriesLabel(name), borderColor: colorOf[name], backgroundColor: colorOf[name],
      pointRadius: 0, borderWidth: 2, stepped: true,
      data: values[k].map((v, i) => ({ x: v, y: (100 * (i + 1)) / values[k].length })),
    }));
    chart(main, 'Latency distribution', 'Share of probes with a round trip up to x (cumulative)' +
          (logarithmic ? '; logarithmic time axis.' : '.'), {
      type: 'line', data: { datasets: cdf },
      options: { scales: { x: axis('ms', logarithmic ? { type: 'logarithmic' } : {}),
                           y: axis('% of probes', { min: 0, max: 100 }) } },
    });
  }

  function show(value) {
    if (value === null || value === undefined) return '–';
    if (Array.isArray(value)) return value.join(', ');
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  function parameters(doc) {
    add(main, 'h2', null, 'Run');
    const table = add(main, 'table', 'kv');
    const row = (name, value) => {
      const tr = add(table, 'tr');
      add(tr, 'th', null, name);
      add(tr, 'td', null, show(value));
    };
    const server = doc.server || {};
    row('server', server.host + ':' + server.port + (server.address ? ' (' + server.address + ')' : ''));
    row('server software', server.software);
    const local = doc.local || {};
    row('local end', local.address ? local.address + ':' + show(local.port) : null);
    row('start time', doc.start_time);
    row('protocol', doc.protocol);
    for (const [name, value] of Object.entries(doc.parameters || {})) row(name, value);
  }

  // speedcli monitor --report: each interface's receive and send rates over time, and the run's summary.
  function monitor(m) {
    document.title = 'speedcli monitor report: ' + ((m.summary && m.summary.start) || '');
    add(main, 'h1', null, 'speedcli monitor report');
    const s = m.summary || {};
    add(main, 'p', 'subtitle', [s.start && s.end ? s.start + ' – ' + s.end : null,
                                s.intervals + ' intervals of ' + m.interval_seconds + ' s'].filter((p) => p).join(' · '));
    if (m.intervals_left_out > 0) {
      add(main, 'p', 'caption', 'The first ' + m.intervals_left_out + ' intervals are not in this report: ' +
          'it keeps the latest ' + m.intervals.length + '.');
    }
    const zero = Date.parse(s.start);
    const byName = new Map();
    for (const interval of m.intervals) {
      const end = (Date.parse(interval.time) - zero) / 1000;
      for (const row of interval.interfaces || []) {
        if (!byName.has(row.name)) byName.set(row.name, []);
        byName.get(row.name).push({ start: end - interval.interval_seconds, end, rx: row.rx_bits_per_second,
                                    tx: row.tx_bits_per_second });
      }
    }
    for (const [name, rows] of byName) {
      const top = Math.max(...rows.map((r) => Math.max(r.rx, r.tx)).filter(finite), 1);
      const [scale, unit] = rateUnit(top);
      const steps = (key) => {
        const points = rows.map((r) => ({ x: r.start, y: r[key] / scale }));
        points.push({ x: rows[rows.length - 1].end, y: rows[rows.length - 1][key] / scale });
        return points;
      };
      // tx dashed: on lo both lines are the same.
      const line = (text, color, key, dash) => ({ label: text, borderColor: color, backgroundColor: color,
                                                  borderWidth: 2, borderDash: dash, pointRadius: 0, stepped: 'after',
                                                  data: steps(key) });
      chart(main, name, 'Receive (rx) and send (tx) rates of each interval, from the kernel\'s counters.', {
        type: 'line', data: { datasets: [line('rx', colorOf.download, 'rx', []), line('tx', colorOf.upload, 'tx', [6, 4])] },
        options: { scales: { x: axis('seconds', { min: 0 }), y: axis(unit, { beginAtZero: true }) } },
      });
    }
    add(main, 'h2', null, 'Summary');
    const table = add(add(main, 'div', 'wide'), 'table', 'figures');
    const head = add(table, 'tr');
    for (const title of ['interface', 'received', 'sent', 'rx average', 'tx average', 'rx peak', 'tx peak']) {
      add(head, 'th', null, title);
    }
    const bytes = (n) => (finite(n) ? (n / 1e6).toPrecision(4) + ' MB' : '–');
    for (const i of s.interfaces || []) {
      const tr = add(table, 'tr');
      for (const cell of [i.name, bytes(i.rx_bytes), bytes(i.tx_bytes), rate(i.rx_bits_per_second),
                          rate(i.tx_bits_per_second), rate(i.rx_peak_bits_per_second),
                          rate(i.tx_peak_bits_per_second)]) {
        add(tr, 'td', null, cell);
      }
    }
    return m.version;
  }

  function drewSomething(canvas) {
    const { width, height } = canvas;
    if (width === 0 || height === 0) return false;
    const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
    for (let i = 3; i < pixels.length; i += 4) {
      if (pixels[i] !== 0) return true;
    }
    return false;
  }

  try {
    const doc = JSON.parse(document.getElementById('report-data').textContent);
    Chart.defaults.color = css('--muted');
    Chart.defaults.borderColor = css('--line');
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    let version = doc.version;
    let source = 'its --json document (docs/json.md)';
    if (doc.monitor) {
      version = monitor(doc.monitor);
      source = 'the --json intervals and summary of speedcli monitor (docs/monitor.md)';
    } else {
      const server = doc.server || {};
      document.title = 'speedcli report: ' + server.host + ', ' + (doc.start_time || '');
      add(main, 'h1', null, 'speedcli report');
      add(main, 'p', 'subtitle', [server.host + ':' + server.port, doc.start_time, server.software]
        .filter((part) => part).join(' · '));
      if (doc.error) add(main, 'p', 'error', 'The test failed: ' + doc.error);
      summary(doc);
      throughput(doc);
      latency(doc);
      parameters(doc);
    }
    const footer = add(main, 'footer', null,
      'Made by speedcli ' + version + '. The figures are ' + source + ', which this file carries in its ' +
      'report-data block. Charts by Chart.js ' + Chart.version + ' (© Chart.js Contributors, MIT License), ' +
      'embedded: this page loads nothing from the network.');
    footer.setAttribute('lang', 'en');
    document.body.dataset.charts = String(charts.filter((c) => drewSomething(c.canvas)).length);
    document.body.dataset.chartsCreated = String(charts.length);
    status.remove();
    document.body.dataset.state = 'done';
  } catch (e) {
    status.textContent = 'The report could not be drawn: ' + (e && e.message ? e.message : e);
    status.className = 'error';
    main.prepend(status);
    document.body.dataset.state = 'error';
  }
})();
