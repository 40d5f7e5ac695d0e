// chart.js: a small time-series line chart on a canvas, written for the
// wsproxy admin page (no dependencies). new LineChart(canvas, opts) then
// chart.draw(points, seriesNames): points are {t: ms, v: {name: number}}.
'use strict';

const PALETTE = ['#58a6ff', '#3fb950', '#d29922', '#f85149', '#bc8cff', '#39c5cf', '#ff7b72', '#e3b341'];

class LineChart {
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.opts = Object.assign({ spanMs: 300000, unit: '', step: false, min: 0, max: null, format: null }, opts || {});
    this.colors = {};
  }

  color(name) {
    if (!this.colors[name]) this.colors[name] = PALETTE[Object.keys(this.colors).length % PALETTE.length];
    return this.colors[name];
  }

  // draw renders points (oldest first) over the last spanMs ending at the
  // newest point, and records what it drew on the canvas element
  // (data-points, data-last-t) for tests and tooling.
  draw(points, names) {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 380, h = c.clientHeight || 150;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const padL = 52, padR = 8, padT = 8, padB = 30;
    const pw = w - padL - padR, ph = h - padT - padB;
    const tEnd = points.length ? points[points.length - 1].t : Date.now();
    // The axis spans the history held, from one minute up to spanMs.
    const span = Math.min(this.opts.spanMs, Math.max(60000, points.length ? tEnd - points[0].t : 0));
    const tStart = tEnd - span;
    let lo = this.opts.min, hi = this.opts.max;
    if (hi === null) {
      hi = 0;
      for (const p of points) for (const n of names) { const v = p.v[n]; if (Number.isFinite(v) && v > hi) hi = v; }
      hi = niceCeil(hi || 1);
    }
    const x = t => padL + (t - tStart) / (tEnd - tStart) * pw;
    const y = v => padT + ph - (v - lo) / ((hi - lo) || 1) * ph;

    // Grid and labels.
    g.strokeStyle = '#2a323c'; g.fillStyle = '#7b8794'; g.lineWidth = 1;
    g.font = '11px system-ui, sans-serif'; g.textAlign = 'right'; g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(padL, yy); g.lineTo(padL + pw, yy); g.stroke();
      g.fillText(this.label(v), padL - 4, yy);
    }
    g.textAlign = 'center'; g.textBaseline = 'top';
    for (let i = 0; i <= 5; i++) {
      const t = tStart + (tEnd - tStart) * i / 5;
      const secs = Math.round((tEnd - t) / 1000);
      g.fillText(secs === 0 ? 'now' : '-' + (secs >= 60 ? Math.floor(secs / 60) + 'm' + (secs % 60 ? secs % 60 + 's' : '') : secs + 's'), x(t), padT + ph + 4);
    }

    // Series.
    const visible = points.filter(p => p.t >= tStart);
    names.forEach(n => {
      g.strokeStyle = this.color(n); g.lineWidth = 1.6; g.beginPath();
      let started = false, prevY = 0;
      for (const p of visible) {
        const v = p.v[n];
        if (!Number.isFinite(v)) { started = false; continue; }
        const xx = x(p.t), yy = y(Math.min(v, hi));
        if (!started) { g.moveTo(xx, yy); started = true; }
        else if (this.opts.step) { g.lineTo(xx, prevY); g.lineTo(xx, yy); }
        else g.lineTo(xx, yy);
        prevY = yy;
      }
      g.stroke();
    });

    // Legend.
    if (names.length > 1 || this.opts.legend) {
      g.textAlign = 'left'; g.textBaseline = 'top';
      let lx = padL + 6, ly = padT - 3;
      for (const n of names) {
        const wn = 22 + g.measureText(n).width;
        if (lx > padL + 6 && lx + wn > padL + pw) { lx = padL + 6; ly += 13; } // wrap
        g.fillStyle = this.color(n); g.fillRect(lx, ly + 5, 10, 3);
        g.fillStyle = '#d8dee9'; g.fillText(n, lx + 14, ly);
        lx += wn;
      }
    }
    c.dataset.points = String(visible.length);
    c.dataset.lastT = String(tEnd);
  }

  label(v) { return this.opts.format ? this.opts.format(v) : compact(v) + this.opts.unit; }
}

function niceCeil(v) {
  const e = Math.pow(10, Math.floor(Math.log10(v))), f = v / e;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}

// compact formats 1234 as "1.23k", 0.0123 as "0.0123".
function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return parseFloat((v / 1e9).toPrecision(3)) + 'G';
  if (a >= 1e6) return parseFloat((v / 1e6).toPrecision(3)) + 'M';
  if (a >= 1e4) return parseFloat((v / 1e3).toPrecision(3)) + 'k';
  if (a >= 100 || v === 0 || Number.isInteger(v)) return String(Math.round(v));
  return String(parseFloat(v.toPrecision(3)));
}
