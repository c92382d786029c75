// Small SVG charts drawn from API data: a fill bar, grouped hourly bars, a line over
// time and an attempts timeline. Sizes are in viewBox units; the SVG scales to its box.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function titled(node, text) {
  node.append(svg("title", {}, text));
  return node;
}

// The colour of a meter's bar for the fraction it shows, by what it measures: a load
// warns as it nears its limit, a score as it falls; progress is only done or not.
const TONES = {
  load: (f) => (f >= 1 ? "full" : f >= 0.75 ? "high" : "ok"),
  score: (f) => (f < 0.5 ? "full" : f < 0.8 ? "high" : "ok"),
  progress: (f) => (f >= 1 ? "done" : "progress"),
};

// A horizontal bar filled to value/max, with the figure written beside it.
export function meter(value, max, { width = 120, label = `${value} / ${max}`, tone = "load" } = {}) {
  const fraction = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  const level = TONES[tone](fraction);
  const barWidth = width - 4;
  return titled(
    svg(
      "svg",
      { class: "meter", viewBox: `0 0 ${width + 70} 14`, width: width + 70, height: 14, role: "img", "aria-label": label },
      svg("rect", { class: "meter-back", x: 0, y: 2, width: barWidth, height: 10, rx: 3 }),
      svg("rect", { class: `meter-fill meter-${level}`, x: 0, y: 2, width: barWidth * fraction, height: 10, rx: 3 }),
      svg("text", { class: "meter-label", x: width + 2, y: 11 }, label),
    ),
    label,
  );
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((f) => f * power >= value);
  return step * power;
}

// Hours as grouped bars (submitted, completed, failed), oldest on the left.
export function hourlyChart(container, hours) {
  const width = 960;
  const height = 260;
  const pad = { left: 44, right: 12, top: 32, bottom: 30 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const series = [
    ["tasks", "submitted"],
    ["successful", "completed"],
    ["failed", "failed or timed out"],
  ];
  const top = niceMax(Math.max(0, ...hours.flatMap((h) => series.map(([key]) => h[key] || 0))));
  const slot = plotW / Math.max(hours.length, 1);
  const barW = Math.max(1, (slot * 0.8) / series.length);
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const chart = svg("svg", { class: "hourly", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Tasks per hour, last 24 hours" });
  for (const tick of [0, top / 2, top]) {
    chart.append(
      svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "axis", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, Number(tick.toFixed(1)).toLocaleString()),
    );
  }
  hours.forEach((hour, index) => {
    const x0 = pad.left + index * slot + slot * 0.1;
    const start = new Date(hour.hour);
    const label = `${start.toLocaleDateString()} ${String(start.getHours()).padStart(2, "0")}:00`;
    series.forEach(([key, name], k) => {
      const value = hour[key] || 0;
      const bar = svg("rect", { class: `bar bar-${key}`, x: x0 + k * barW, y: y(value), width: barW, height: pad.top + plotH - y(value) });
      chart.append(titled(bar, `${label}: ${value} ${name}`));
    });
    if (index % 3 === 0 || index === hours.length - 1) {
      chart.append(svg("text", { class: "axis", x: x0 + (barW * series.length) / 2, y: height - 10, "text-anchor": "middle" }, `${String(start.getHours()).padStart(2, "0")}:00`));
    }
  });
  const legend = svg("g", { class: "legend" });
  series.forEach(([key, name], k) => {
    legend.append(
      svg("rect", { class: `swatch-${key}`, x: pad.left + k * 150, y: 4, width: 10, height: 10 }),
      svg("text", { class: "axis", x: pad.left + 14 + k * 150, y: 13 }, name),
    );
  });
  chart.append(legend);
  container.replaceChildren(chart);
}

// Samples [{at: ms, value, limit}] as a line (value) under a dashed line (limit).
export function trendChart(container, samples, { label = "in flight", limitLabel = "capacity" } = {}) {
  const width = 960;
  const height = 120;
  const pad = { left: 44, right: 12, top: 10, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const chart = svg("svg", { class: "trend", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${label} over time` });
  const top = niceMax(Math.max(1, ...samples.map((s) => Math.max(s.value, s.limit || 0))));
  const first = samples.length ? samples[0].at : 0;
  const span = Math.max(1, (samples.length ? samples[samples.length - 1].at : 0) - first);
  const x = (at) => pad.left + ((at - first) / span) * plotW;
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  for (const tick of [0, top]) {
    chart.append(
      svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "axis", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, tick),
    );
  }
  if (samples.length > 1) {
    const points = (key) => samples.map((s) => `${x(s.at).toFixed(1)},${y(s[key] || 0).toFixed(1)}`).join(" ");
    chart.append(
      titled(svg("polyline", { class: "limit-line", points: points("limit") }), limitLabel),
      titled(svg("polyline", { class: "value-line", points: points("value") }), label),
    );
  }
  const last = samples[samples.length - 1];
  const caption = last ? `${label}: ${last.value} of ${last.limit} (${limitLabel}) — ${samples.length} samples` : "waiting for the first sample";
  chart.append(svg("text", { class: "axis", x: pad.left, y: height - 6 }, caption));
  container.replaceChildren(chart);
}

// Attempts on one time axis: a bar per attempt from its start to its end (or now).
export function attemptsTimeline(container, attempts, createdAt, nowMs) {
  const width = 640;
  const row = 26;
  const pad = { left: 120, right: 16, top: 8, bottom: 22 };
  const height = pad.top + pad.bottom + attempts.length * row;
  if (!attempts.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No attempt yet.";
    container.replaceChildren(empty);
    return;
  }
  const chart = svg("svg", { class: "timeline", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Attempts timeline" });
  const start = Date.parse(createdAt);
  const ends = attempts.map((a) => (a.endedAt ? Date.parse(a.endedAt) : nowMs));
  const end = Math.max(start + 1, nowMs, ...ends);
  const plotW = width - pad.left - pad.right;
  const x = (ms) => pad.left + ((ms - start) / (end - start)) * plotW;
  attempts.forEach((attempt, index) => {
    const y0 = pad.top + index * row;
    const from = Date.parse(attempt.startedAt);
    const to = ends[index];
    const outcome = attempt.outcome || "RUNNING";
    chart.append(
      svg("text", { class: "axis", x: pad.left - 8, y: y0 + 16, "text-anchor": "end" }, `#${attempt.attempt} ${attempt.serverId}`),
      titled(
        svg("rect", { class: `span span-${outcome.toLowerCase()}`, x: x(from), y: y0 + 4, width: Math.max(3, x(to) - x(from)), height: row - 8, rx: 3 }),
        `attempt ${attempt.attempt} on ${attempt.serverId}: ${outcome}${attempt.error ? ` (${attempt.error})` : ""}`,
      ),
    );
  });
  chart.append(
    svg("text", { class: "axis", x: pad.left, y: height - 6 }, "created"),
    svg("text", { class: "axis", x: width - pad.right, y: height - 6, "text-anchor": "end" }, `+${((end - start) / 1000).toFixed(1)} s`),
  );
  container.replaceChildren(chart);
}
