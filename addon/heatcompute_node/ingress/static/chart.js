"use strict";
// A line chart on a canvas: power and heat target on the left axis (W), room
// temperature on the right (°C), the last 24 hours on the time axis. No library.
function drawChart(canvas, points) {
  const ctx = canvas.getContext("2d");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 48, r: 48, t: 10, b: 24 };
  // At most the last 24 h; a node that started recently shows its span (10 min or more).
  const end = Date.now() / 1000;
  const first = points.length ? points[0].t : end;
  const start = Math.max(end - 86400, Math.min(first, end - 600));
  const watts = points.flatMap(p => [p.power_w, p.target_w]).filter(v => v !== null);
  const temps = points.map(p => p.room_c).filter(v => v !== null);
  const wMax = Math.max(10, ...watts) * 1.1;
  const tMin = temps.length ? Math.floor(Math.min(...temps) - 1) : 15;
  const tMax = temps.length ? Math.ceil(Math.max(...temps) + 1) : 25;
  const x = t => pad.l + (t - start) / (end - start) * (w - pad.l - pad.r);
  const yW = v => h - pad.b - v / wMax * (h - pad.t - pad.b);
  const yT = v => h - pad.b - (v - tMin) / (tMax - tMin) * (h - pad.t - pad.b);
  const css = name => getComputedStyle(document.documentElement).getPropertyValue(name);
  ctx.font = "11px system-ui"; ctx.fillStyle = "#666"; ctx.strokeStyle = "#e3e3e3";
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + i * (h - pad.t - pad.b) / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(Math.round(wMax * (1 - i / 4)) + " W", pad.l - 4, y + 4);
    ctx.textAlign = "left"; ctx.fillText((tMax - (tMax - tMin) * i / 4).toFixed(1) + " °C", w - pad.r + 4, y + 4);
  }
  ctx.textAlign = "center";
  const ago = s => s >= 3600 ? `-${(s / 3600).toFixed(1)} h` : `-${Math.round(s / 60)} min`;
  for (let i = 0; i <= 4; i++) {
    const t = start + (end - start) * i / 4;
    ctx.fillText(i === 4 ? "now" : ago(end - t), x(t), h - 6);
  }
  const line = (key, y, color, dash) => {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.setLineDash(dash);
    ctx.beginPath();
    let open = false;
    for (const p of points) {
      if (p[key] === null) { open = false; continue; }
      const px = x(p.t), py = y(p[key]);
      if (open) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      open = true;
    }
    ctx.stroke(); ctx.setLineDash([]);
  };
  line("target_w", yW, css("--target"), [6, 4]);
  line("power_w", yW, css("--power"), []);
  line("room_c", yT, css("--room"), []);
  canvas.dataset.points = String(points.length);
}
