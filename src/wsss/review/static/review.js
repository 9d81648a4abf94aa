/* wsss review report: pagination, sort and filter over per-image records loaded with <script> tags.
 * State lives in the URL hash (#sort=iou-desc&cls=8&page=2), so a view can be bookmarked and tests
 * can open one directly. The default view (worst-first) needs no index: record files are named by
 * worst-first rank, so page n is ranks [(n-1)*size, n*size). No network, no server, no libraries. */
(function () {
  "use strict";
  var R = (window.REVIEW = window.REVIEW || {});
  var meta = null, index = null, records = {}, pending = {}, indexWaiters = [], renderToken = 0;
  var DEFAULTS = { sort: "triage", cls: "", tmin: "", tmax: "", imin: "", imax: "", origin: "", state: "", q: "", page: "1" };

  R.setMeta = function (value) { meta = value; };
  R.setIndex = function (value) {
    index = value;
    indexWaiters.splice(0).forEach(function (callback) { callback(); });
  };
  R.addRecord = function (rank, value) {
    records[rank] = value;
    (pending[rank] || []).forEach(function (callback) { callback(); });
    delete pending[rank];
  };

  function pad(number, width) { var text = String(number); while (text.length < width) text = "0" + text; return text; }
  function recordPath(rank) {
    return "data/records/" + pad(Math.floor(rank / meta.records_per_folder), 3) + "/" + pad(rank, 6) + ".js";
  }
  function loadScript(src, onerror) {
    var script = document.createElement("script");
    script.src = src;
    script.onerror = onerror;
    document.head.appendChild(script);
  }
  function loadRecords(ranks, done) {
    var left = ranks.length;
    if (!left) { done(); return; }
    function one() { left -= 1; if (left === 0) done(); }
    ranks.forEach(function (rank) {
      if (records[rank]) { one(); return; }
      var first = !pending[rank];
      (pending[rank] = pending[rank] || []).push(one);
      if (first) loadScript(recordPath(rank), function () { records[rank] = { missing: true, rank: rank }; R.addRecord(rank, records[rank]); });
    });
  }
  function withIndex(done) {
    if (index) { done(); return; }
    indexWaiters.push(done);
    if (indexWaiters.length === 1) loadScript("data/index.js", function () { setStatus("error", "data/index.js could not be loaded"); });
  }

  function readState() {
    var params = new URLSearchParams(location.hash.replace(/^#/, "")), state = {};
    Object.keys(DEFAULTS).forEach(function (key) { state[key] = params.get(key) || DEFAULTS[key]; });
    if (!meta.sorts[state.sort]) state.sort = DEFAULTS.sort;
    state.page = Math.max(1, parseInt(state.page, 10) || 1);
    return state;
  }
  function writeState(state) {
    var params = new URLSearchParams();
    Object.keys(DEFAULTS).forEach(function (key) {
      if (String(state[key]) !== DEFAULTS[key] && state[key] !== "") params.set(key, state[key]);
    });
    var hash = params.toString();
    if (("#" + hash) !== location.hash && !(hash === "" && location.hash === "")) location.hash = hash;
    else render();
  }
  function isDefaultView(state) {
    return Object.keys(DEFAULTS).every(function (key) { return key === "page" || state[key] === DEFAULTS[key]; });
  }
  function number(text) { var value = parseFloat(text); return isNaN(value) ? null : value; }

  /* Ranks of the view (sorted, filtered); the default view needs no index at all. */
  function selectRanks(state, done) {
    if (isDefaultView(state)) { done(null, meta.total); return; }
    withIndex(function () {
      var ranks = [], tmin = number(state.tmin), tmax = number(state.tmax), imin = number(state.imin), imax = number(state.imax);
      var cls = state.cls === "" ? null : parseInt(state.cls, 10), q = state.q.toLowerCase();
      var needIou = state.sort.indexOf("iou") === 0 || imin !== null || imax !== null;
      for (var rank = 0; rank < index.id.length; rank++) {
        var score = index.score[rank], iou = index.iou[rank];
        if (tmin !== null && score < tmin) continue;
        if (tmax !== null && score > tmax) continue;
        if (needIou && iou === null) continue;
        if (imin !== null && iou < imin) continue;
        if (imax !== null && iou > imax) continue;
        if (cls !== null && index.tags[rank].indexOf(cls) < 0) continue;
        if (q && index.id[rank].toLowerCase().indexOf(q) < 0) continue;
        if (state.origin === "human-corrected" && !index.corrected[rank]) continue;
        if (state.origin === "pseudo" && index.corrected[rank]) continue;
        if (state.state === "queue" && index.done[rank]) continue;
        if (state.state === "done" && !index.done[rank]) continue;
        ranks.push(rank);
      }
      var compare = {
        "triage": function (a, b) { return a - b; },
        "triage-desc": function (a, b) { return index.score[b] - index.score[a] || (index.id[a] < index.id[b] ? -1 : 1); },
        "iou": function (a, b) { return index.iou[a] - index.iou[b] || a - b; },
        "iou-desc": function (a, b) { return index.iou[b] - index.iou[a] || a - b; },
        "id": function (a, b) { return index.id[a] < index.id[b] ? -1 : index.id[a] > index.id[b] ? 1 : 0; }
      }[state.sort];
      ranks.sort(compare);
      done(ranks, ranks.length);
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "style") node.style.cssText = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function fmt(value, digits) { return value === null || value === undefined ? "n/a" : Number(value).toFixed(digits); }
  function percent(value) { return (100 * value).toFixed(1) + " %"; }
  function scoreColor(score) { var hue = Math.round(120 * Math.max(0, Math.min(1, score))); return "hsl(" + hue + ",70%,42%)"; }

  function legend(labels) {
    return el("ul", { "class": "legend" }, labels.map(function (label) {
      var name = label === meta.ignore_index ? "ignored" : (meta.class_names[label] || "label " + label);
      return el("li", { "data-label": String(label) }, [
        el("span", { "class": "swatch", style: "background:" + meta.colors[String(label)] }), el("span", { text: name })]);
    }));
  }
  function colorbar(stops, marker) {
    var bar = el("div", { "class": "colorbar", style: "background:linear-gradient(to right," + stops.join(",") + ")" });
    if (marker !== undefined) bar.appendChild(el("span", { "class": "marker", style: "left:" + (100 * marker) + "%", title: "threshold " + marker }));
    return el("div", { "class": "colorbar-box" }, [bar, el("div", { "class": "ticks" }, [el("span", { text: "0" }), el("span", { text: "0.5" }), el("span", { text: "1" })])]);
  }
  function image(src, alt, record) {
    var scale = Math.min(1, 320 / Math.max(record.width, record.height));
    var node = el("img", { src: src, alt: alt, loading: "lazy", width: String(Math.round(record.width * scale)), height: String(Math.round(record.height * scale)) });
    node.addEventListener("load", function () { node.setAttribute("data-loaded", "1"); });
    node.addEventListener("error", function () { node.setAttribute("data-loaded", "error"); });
    return el("a", { href: src, target: "_blank" }, [node]);
  }
  function figure(src, caption, record, extra) {
    return el("figure", { "class": "panel" }, [image(src, caption, record), el("figcaption", {}, [el("div", { text: caption })].concat(extra || []))]);
  }
  function lineageList(record) {
    var rows = [], lineage = record.lineage || {};
    function add(key, value) { rows.push(el("dt", { text: key })); rows.push(el("dd", { text: value })); }
    if (record.correction) add("mask", record.correction.summary + (record.correction.stale ? " — STALE: " + record.correction.stale : ""));
    else add("mask", "pseudo (not corrected)");
    add("review", record.reviewed ? record.reviewed.summary : record.state === "to review" ?
      "in the queue; accept it with: wsss review --mark-reviewed " + record.image_id : record.state);
    add("model", JSON.stringify(lineage.model || {}));
    add("template", lineage.template || "n/a");
    add("params sha256", JSON.stringify(lineage.params_sha256 || {}));
    add("code version", JSON.stringify(lineage.code_version || {}));
    add("flow-run ids", JSON.stringify(lineage.flow_run_ids || {}));
    add("triage terms", JSON.stringify(record.triage_terms));
    return el("details", { "class": "lineage" }, [el("summary", { text: "lineage and triage terms" }), el("dl", {}, rows)]);
  }
  function row(record, position) {
    if (record.missing) return el("article", { "class": "row missing" }, [el("p", { text: "record " + record.rank + " is missing" })]);
    var tags = record.tags.map(function (tag, i) {
      return el("span", { "class": "tag" }, [el("span", { text: tag + " " }), el("b", { text: fmt(record.tag_probabilities[i], 2) })]);
    });
    var header = el("header", {}, [
      el("span", { "class": "rank", text: "#" + (position + 1) }),
      el("h2", { text: record.image_id }),
      el("span", { "class": "badge score", style: "background:" + scoreColor(record.triage_score), text: "triage " + fmt(record.triage_score, 3) }),
      el("span", { "class": "badge iou", text: record.iou === null ? "no GT" : "IoU " + fmt(record.iou, 3) }),
      el("span", { "class": "stat", text: "ignored " + percent(record.ignored_share) }),
      el("span", { "class": "stat", text: "mean confidence " + fmt(record.mean_confidence, 3) }),
      record.origin === "human-corrected" ? el("span", { "class": "badge corrected", text: "human-corrected" }) : null,
      record.reviewed ? el("span", { "class": "badge reviewed", text: "reviewed" }) : null,
      record.state && record.state !== "to review" ? el("span", { "class": "stat", text: "out of the queue" }) : null,
      el("span", { "class": "tags" }, tags)
    ]);
    var p = record.panels, panels = [figure(p.photo, "photo " + record.width + "×" + record.height, record)];
    (p.maps || []).forEach(function (src, i) {
      panels.push(figure(src, "refined map: " + record.tags[i] + " (p=" + fmt(record.tag_probabilities[i], 2) + ")", record, [colorbar(meta.colormaps.map)]));
    });
    panels.push(figure(p.mask, "pseudo mask", record, [legend(record.mask_labels)]));
    panels.push(figure(p.confidence, "confidence (ignored below " + meta.confidence_threshold + ")", record, [colorbar(meta.colormaps.confidence, meta.confidence_threshold)]));
    if (p.ground_truth) panels.push(figure(p.ground_truth, "ground truth · IoU " + fmt(record.iou, 3), record, [legend(record.ground_truth_labels || [])]));
    if (p.corrected) panels.push(figure(p.corrected, "human-corrected mask (used for training)" +
      (record.corrected_iou === null || record.corrected_iou === undefined ? "" : " · IoU " + fmt(record.corrected_iou, 3)),
      record, [legend(record.corrected_labels || [])]));
    return el("article", { "class": "row", "data-id": record.image_id, "data-rank": String(record.rank), "data-state": record.state || "",
      "data-score": String(record.triage_score), "data-iou": record.iou === null ? "" : String(record.iou) },
      [header, el("div", { "class": "panels" }, panels), lineageList(record)]);
  }

  function setStatus(state, text, extra) {
    var status = document.getElementById("status");
    status.setAttribute("data-state", state);
    Object.keys(extra || {}).forEach(function (key) { status.setAttribute("data-" + key, String(extra[key])); });
    status.textContent = text;
  }
  function pager(state, pages) {
    [document.getElementById("pager-top"), document.getElementById("pager")].forEach(function (box) {
      box.textContent = "";
      function go(page, text, disabled) {
        var button = el("button", { type: "button", text: text });
        button.disabled = disabled;
        button.addEventListener("click", function () { var next = Object.assign({}, state, { page: page }); writeState(next); window.scrollTo(0, 0); });
        box.appendChild(button);
      }
      go(1, "« first", state.page <= 1);
      go(state.page - 1, "‹ previous", state.page <= 1);
      box.appendChild(el("span", { text: " page " + state.page + " of " + pages + " " }));
      go(state.page + 1, "next ›", state.page >= pages);
      go(pages, "last »", state.page >= pages);
    });
  }
  function syncControls(state) {
    var form = document.getElementById("controls");
    Object.keys(DEFAULTS).forEach(function (key) { if (form.elements[key]) form.elements[key].value = state[key]; });
  }

  function render() {
    var state = readState(), token = ++renderToken, started = performance.now();
    syncControls(state);
    setStatus("loading", "Loading…");
    selectRanks(state, function (ranks, total) {
      var size = meta.page_size, pages = Math.max(1, Math.ceil(total / size));
      if (state.page > pages) state.page = pages;
      var first = (state.page - 1) * size, shown = [];
      for (var i = first; i < Math.min(total, first + size); i++) shown.push(ranks ? ranks[i] : i);
      loadRecords(shown, function () {
        if (token !== renderToken) return;
        var rows = document.getElementById("rows");
        rows.textContent = "";
        shown.forEach(function (rank, i) { rows.appendChild(row(records[rank], first + i)); });
        pager(state, pages);
        var text = total ? "Showing " + (first + 1) + "–" + (first + shown.length) + " of " + total : "No image matches";
        var queue = meta.queue_length === undefined ? "" : " · " + meta.queue_length + " to review";
        setStatus("ready", text + " · sorted by " + meta.sorts[state.sort] + " · " + meta.total + " images in the run" + queue,
          { total: total, shown: shown.length, sort: state.sort, "render-ms": Math.round(performance.now() - started) });
        R.renderedAt = performance.now();
      });
    });
  }

  function start() {
    if (!meta) { setStatus("error", "data/meta.js could not be loaded"); return; }
    var form = document.getElementById("controls");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var state = {};
      Object.keys(DEFAULTS).forEach(function (key) { state[key] = form.elements[key] ? form.elements[key].value.trim() : DEFAULTS[key]; });
      state.page = "1";
      writeState(state);
    });
    ["sort", "cls", "origin", "state"].forEach(function (name) {
      form.elements[name].addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit")); });
    });
    document.getElementById("reset").addEventListener("click", function () { writeState(Object.assign({}, DEFAULTS)); });
    window.addEventListener("hashchange", render);
    render();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
