"use strict";
// Every text from the data goes in through text nodes (el, textContent): never as HTML.
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function show(value) {
  if (value === null || value === undefined) return "-";
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

function mark(flag) {
  if (flag === null || flag === undefined) return el("span", {}, "-");
  return el("span", { className: flag ? "hit" : "miss" }, flag ? "yes" : "no");
}

function settings(run) {
  const list = el("dl", { className: "settings", id: "settings" });
  for (const [key, value] of Object.entries(run.settings)) {
    list.append(el("dt", {}, key), el("dd", {}, show(value)));
  }
  return list;
}

// ------------------------------------------------------------------- metrics

function numericKeys(row) {
  return Object.keys(row).filter((key) => typeof row[key] === "number" || row[key] === null);
}

function metricsTable(name, report, columns) {
  const head = el("tr", {}, el("th", {}, "section"), ...columns.map((c) => el("th", {}, c)));
  const body = el("tbody");
  const rows = [...Object.entries(report.per_subset || {}), ["overall", report.overall]];
  for (const [section, row] of rows) {
    const cells = columns.map((key) => {
      const cell = el("td", { className: "num" }, show(row[key]));
      cell.dataset.metric = [name, section, key].join("|");
      return cell;
    });
    body.append(el("tr", {}, el("th", {}, section), ...cells));
  }
  return el("table", { className: "metrics" }, el("thead", {}, head), body);
}

function metricsSection(run) {
  const box = el("section", { id: "metrics" }, el("h2", {}, "Metrics"));
  const metrics = run.metrics;
  if (!metrics) {
    box.append(el("p", { className: "note" }, run.note || "no metrics"));
    return box;
  }
  box.append(el("p", {}, `${metrics.n} examples, ${metrics.kind}` +
    (metrics.reconcile ? `; headline: ${metrics.reconcile}` : "")));
  const reports = metrics.reconciliations || { [metrics.kind]: metrics };
  const kinds = Object.keys(reports).sort((a, b) => (b === metrics.reconcile) - (a === metrics.reconcile));
  for (const kind of kinds) {
    box.append(el("h3", {}, kind + (kind === metrics.reconcile ? " (headline)" : "")));
    box.append(metricsTable(kind, reports[kind], numericKeys(reports[kind].overall)));
  }
  for (const [k, member] of (metrics.members || []).entries()) {
    box.append(el("h3", {}, `member ${member.member ?? k + 1}: ${show(member.judge)}`));
    box.append(metricsTable(`member ${k + 1}`, member, numericKeys(member.overall)));
  }
  for (const key of ["agreement", "rewardbench", "best_of_n"]) {
    if (metrics[key]) box.append(el("h3", {}, key), el("pre", {}, show(metrics[key])));
  }
  return box;
}

// ------------------------------------------------------------------- charts

function barChart(title, bars, line) {
  const width = 60 + 70 * Math.max(bars.length, 1), height = 220, top = 30, bottom = 180;
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  chart.append(svg("text", { x: 10, y: 18, "font-size": 13, "font-weight": 600 }, title));
  for (const tick of [0, 0.5, 1]) {
    const y = bottom - tick * (bottom - top);
    chart.append(svg("line", { x1: 40, x2: width - 10, y1: y, y2: y, stroke: "#ddd" }));
    chart.append(svg("text", { x: 8, y: y + 4, "font-size": 10 }, tick.toFixed(1)));
  }
  bars.forEach(([label, value, extra], i) => {
    const x = 50 + 70 * i;
    if (value !== null) {
      const h = value * (bottom - top);
      chart.append(svg("rect", { x, y: bottom - h, width: 40, height: h, fill: "#4c78a8" }));
      chart.append(svg("text", { x, y: bottom - h - 4, "font-size": 10 }, value.toFixed(2)));
    }
    if (line && extra !== null && extra !== undefined) {
      const y = bottom - extra * (bottom - top);
      chart.append(svg("line", { x1: x - 4, x2: x + 44, y1: y, y2: y, stroke: "#e45756", "stroke-width": 2 }));
    }
    chart.append(svg("text", { x, y: bottom + 14, "font-size": 10 }, label.slice(0, 12)));
  });
  if (line) chart.append(svg("text", { x: 10, y: height - 8, "font-size": 10, fill: "#e45756" }, line));
  return chart;
}

function chartsSection(run) {
  const metrics = run.metrics;
  const box = el("section", { id: "charts", className: "charts" });
  if (!metrics || metrics.kind !== "accuracy") return box;
  const subsets = Object.entries(metrics.per_subset || {}).map(([name, row]) => [name, row.accuracy]);
  box.append(barChart("accuracy per section", [...subsets, ["overall", metrics.overall.accuracy]]));
  const cal = metrics.calibration;
  if (cal && cal.n) {
    const bins = cal.bins.map((b) => [b.bin, b.accuracy, b.confidence]);
    box.append(barChart(`calibration (ECE ${show(cal.ece)}): accuracy per confidence bin`, bins,
      "red: mean confidence"));
  }
  return box;
}

// ------------------------------------------------------------------- examples

function decisionKeys(examples) {
  const keys = [];
  for (const example of examples) {
    for (const key of Object.keys(example.decisions)) if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

function filterBar(run, apply) {
  const box = el("div", { className: "filters", id: "filters" });
  const check = (id, text) => {
    const input = el("input", { type: "checkbox", id });
    input.addEventListener("change", apply);
    box.append(el("label", {}, input, " " + text));
  };
  check("f-miss", "misses");
  check("f-flip", "flips");
  check("f-fail", "failures");
  check("f-low", "confidence below");
  const threshold = el("input", { type: "number", id: "f-threshold", value: "0.6", step: "0.05", min: "0", max: "1" });
  threshold.addEventListener("input", apply);
  box.append(threshold);
  const section = el("select", { id: "f-section" }, el("option", { value: "" }, "every section"));
  for (const name of [...new Set(run.examples.map((e) => e.subset))]) {
    section.append(el("option", { value: name }, name));
  }
  section.addEventListener("change", apply);
  box.append(el("label", {}, "section ", section), el("span", { id: "shown" }));
  return box;
}

function keep(example) {
  const on = (id) => document.getElementById(id).checked;
  const threshold = Number(document.getElementById("f-threshold").value);
  const section = document.getElementById("f-section").value;
  if (on("f-miss") && example.correct !== false) return false;
  if (on("f-flip") && example.flipped !== true) return false;
  if (on("f-fail") && !example.failed) return false;
  if (on("f-low") && !(example.confidence !== null && example.confidence < threshold)) return false;
  return !section || example.subset === section;
}

function field(key, value) {
  const box = el("div", { className: "field" }, el("span", { className: "key" }, key + ": "));
  const text = show(value);
  if ((value === null || typeof value !== "object") && text.length < 80 && !text.includes("\n")) box.append(text);
  else box.append(el("pre", {}, text));
  return box;
}

function bars(probabilities) {
  const box = el("div", { className: "bars" });
  for (const [label, p] of Object.entries(probabilities)) {
    const fill = el("div", { className: "fill" });
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    box.append(el("div", { className: "bar" }, el("span", {}, label),
      el("div", { className: "track" }, fill), el("span", {}, p.toFixed(3))));
  }
  return box;
}

function inputsBox(inputs) {
  const box = el("div", { className: "inputs" }, el("h3", {}, "inputs"));
  if (!inputs) {
    box.append(el("p", { className: "note" }, "the source is not readable here"));
    return box;
  }
  for (const [key, value] of Object.entries(inputs)) {
    if (Array.isArray(value) && value.every((t) => t && typeof t === "object" && "role" in t)) {
      box.append(el("div", { className: "key" }, key + ":"));
      for (const turn of value) box.append(el("div", { className: "turn" }, el("b", {}, show(turn.role) + ": "), el("pre", {}, show(turn.content))));
    } else box.append(field(key, value));
  }
  return box;
}

function detail(example) {
  const box = document.getElementById("detail");
  box.replaceChildren(el("h2", {}, `example ${example.id} (${example.subset})`), inputsBox(example.inputs));
  const verdicts = el("div", { className: "verdicts" });
  for (const verdict of example.verdicts) {
    // The judge's fields in its own order (a list of [name, value]), then the record's.
    const fields = el("div", { className: "fields" });
    for (const [key, value] of verdict.fields) fields.append(field(key, value));
    const stored = el("div", { className: "stored" });
    for (const [key, value] of Object.entries(verdict.record)) stored.append(field(key, value));
    const card = el("div", { className: "verdict" }, el("h3", {}, verdict.title), fields, stored);
    if (verdict.probabilities) card.append(bars(verdict.probabilities));
    verdicts.append(card);
  }
  box.append(verdicts, el("h3", {}, "record"));
  for (const [key, value] of Object.entries(example.record)) box.append(field(key, value));
}

function examplesSection(run) {
  const keys = decisionKeys(run.examples);
  const columns = ["id", "section", "label", ...keys, "flipped", "confidence", "correct"];
  const body = el("tbody");
  const rows = run.examples.map((example) => {
    const row = el("tr", {}, el("td", {}, example.id), el("td", {}, example.subset), el("td", {}, example.label),
      ...keys.map((k) => el("td", {}, show(example.decisions[k] ?? null))),
      el("td", {}, mark(example.flipped)), el("td", { className: "num" }, show(example.confidence)),
      el("td", {}, example.failed ? el("span", { className: "miss" }, "failed") : mark(example.correct)));
    row.addEventListener("click", () => {
      for (const other of body.querySelectorAll("tr.selected")) other.classList.remove("selected");
      row.classList.add("selected");
      detail(example);
    });
    body.append(row);
    return row;
  });
  const apply = () => {
    let count = 0;
    run.examples.forEach((example, i) => {
      const visible = keep(example);
      rows[i].hidden = !visible;
      count += visible;
    });
    document.getElementById("shown").textContent = `${count} of ${rows.length} examples`;
  };
  const table = el("table", { id: "examples" }, el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))), body);
  const box = el("section", {}, el("h2", {}, "Examples"), filterBar(run, apply), table, el("div", { id: "detail", className: "detail" }));
  return [box, apply];
}

// ------------------------------------------------------------------- pages

function runPage(run) {
  const app = document.getElementById("app");
  const status = el("span", { className: "status" + (run.status === "finished" ? "" : " progress"), id: "status" }, run.status);
  app.replaceChildren(el("h1", {}, "Eval report: " + run.title), status);
  if (run.note) app.append(el("p", { className: "note" }, run.note));
  app.append(el("h2", {}, "Settings"), settings(run), metricsSection(run), chartsSection(run));
  const [box, apply] = examplesSection(run);
  app.append(box);
  apply();
}

function decisionText(decisions) {
  return Object.entries(decisions).map(([k, v]) => `${k}: ${v}`).join(", ");
}

function comparePage(runs, changes) {
  const app = document.getElementById("app");
  app.replaceChildren(el("h1", {}, "Comparison of two runs"));
  const summary = el("table", { id: "runs" }, el("tr", {}, el("th", {}, "run"), el("th", {}, "status"), el("th", {}, "judge"), el("th", {}, "accuracy")));
  runs.forEach((run, i) => {
    const accuracy = el("td", { className: "num" }, show(run.metrics?.overall?.accuracy ?? null));
    accuracy.dataset.metric = `run ${i + 1}|overall|accuracy`;
    summary.append(el("tr", {}, el("td", {}, run.title), el("td", {}, run.status), el("td", {}, show(run.settings["judge name"] ?? null)), accuracy));
  });
  const changed = changes.filter((c) => c.changed).length;
  const only = el("input", { type: "checkbox", id: "f-changed" });
  const body = el("tbody");
  const rows = changes.map((c) => {
    const row = el("tr", {}, el("td", {}, c.id), el("td", {}, c.subset), el("td", {}, decisionText(c.decisions[0])),
      el("td", {}, decisionText(c.decisions[1])), el("td", {}, mark(c.correct[0])), el("td", {}, mark(c.correct[1])),
      el("td", {}, c.changed ? "changed" : ""));
    body.append(row);
    return row;
  });
  only.addEventListener("change", () => changes.forEach((c, i) => { rows[i].hidden = only.checked && !c.changed; }));
  const head = el("tr", {}, ...["id", "section", "decision (1)", "decision (2)", "correct (1)", "correct (2)", ""].map((c) => el("th", {}, c)));
  app.append(summary, el("p", { id: "changed-count" }, `${changed} of ${changes.length} examples changed decision`),
    el("label", {}, only, " changed only"), el("table", { id: "changes" }, el("thead", {}, head), body));
}

if (DATA.changes) comparePage(DATA.runs, DATA.changes);
else runPage(DATA.runs[0]);
