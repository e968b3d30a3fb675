"""The two pages of the web app (HTML + a little JavaScript, no build step): review and reader study."""

from __future__ import annotations

from flask import render_template_string

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 2rem; background: #f6f6f4; color: #222; }
header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; margin-bottom: .8rem; }
img.big { width: 384px; height: 384px; image-rendering: pixelated; background: #ddd; border: 1px solid #aaa; }
img.side { width: 192px; height: 192px; image-rendering: pixelated; background: #ddd; border: 1px solid #aaa; }
.row { display: flex; gap: 1rem; align-items: flex-start; }
button { font-size: 1rem; padding: .4rem .9rem; margin-right: .3rem; }
#progress, #study-progress { width: 320px; }
.tile { display: inline-block; margin: 3px; border: 4px solid #ccc; cursor: pointer; }
.tile.accept { border-color: #2a2; } .tile.reject { border-color: #c22; }
.tile img { width: 96px; height: 96px; image-rendering: pixelated; display: block; }
.meta { font-size: .9rem; line-height: 1.5; } kbd { background: #eee; border: 1px solid #bbb; padding: 0 .3rem; }
"""

REVIEW = """<!doctype html><html><head><meta charset="utf-8"><title>Review · {{ title }}</title>
<style>{{ style }}</style></head><body>
<header><h2 style="margin:0">Review synthetic images · {{ title }}</h2>
<label>Reviewer <input id="reviewer" value="{{ reviewer }}" size="12"></label>
<label>Class <select id="filter-class"><option value="">all</option>
{% for c in classes %}<option>{{ c }}</option>{% endfor %}</select></label>
<label>Method <select id="filter-method"><option value="">all</option></select></label>
<progress id="progress" value="0" max="1"></progress><span id="count"></span>
<button id="grid-toggle">Grid (g)</button></header>
<div id="single"><div class="row">
<div><img id="main" class="big" alt="synthetic image"><div class="meta" id="info"></div></div>
<div><div>source</div><img id="source" class="side" alt="source image">
<div id="mask-title">edit mask</div><img id="mask" class="side" alt="edit mask"></div></div>
<p><button id="accept">Accept <kbd>a</kbd></button><button id="reject">Reject <kbd>r</kbd></button>
<input id="reason" placeholder="reason (optional)" size="28"><button id="skip">Skip <kbd>s</kbd></button>
<button id="prev">← Prev</button><button id="next">Next →</button></p>
<div id="status"></div></div>
<div id="grid" style="display:none"></div>
<script>
const TOKEN = {{ token|tojson }}; const H = {"X-Token": TOKEN, "Content-Type": "application/json"};
let items = [], view = [], pos = 0;
const $ = (id) => document.getElementById(id);
const img = (id, which) => `/image/${id}/${which}?token=${encodeURIComponent(TOKEN)}`;
async function load() {
  items = await (await fetch("/api/items", {headers: H})).json();
  const methods = [...new Set(items.map(i => i.method))].sort();
  $("filter-method").innerHTML = '<option value="">all</option>' + methods.map(m => `<option>${m}</option>`).join("");
  refilter();
}
function refilter() {
  const c = $("filter-class").value, m = $("filter-method").value;
  view = items.filter(i => (!c || i.label === c) && (!m || i.method === m));
  pos = Math.max(0, view.findIndex(i => !i.decision)); show(); grid();
}
function show() {
  const done = view.filter(i => i.decision).length;
  $("progress").max = Math.max(1, view.length); $("progress").value = done;
  $("count").textContent = ` ${done} / ${view.length} decided`;
  if (!view.length) { $("info").textContent = "no images"; return; }
  const it = view[pos];
  $("main").src = img(it.id, "synthetic"); $("main").dataset.id = it.id;
  $("source").style.visibility = $("mask").style.visibility = it.source ? "visible" : "hidden";
  $("mask").style.display = $("mask-title").style.display = "";
  if (it.source) { $("source").src = img(it.id, "source"); $("mask").src = img(it.id, "mask"); }
  $("info").innerHTML = `<b>${it.label}</b> · ${it.method} · seed ${it.seed}<br>${it.path}<br>` +
    `decision: <b id="decision">${it.decision || "none"}</b> · ${pos + 1} of ${view.length}`;
}
async function decide(decision) {
  if (!view.length) return;
  const it = view[pos];
  const body = {id: it.id, decision, reason: decision === "reject" ? $("reason").value : "",
                reviewer: $("reviewer").value};
  const r = await fetch("/api/decide", {method: "POST", headers: H, body: JSON.stringify(body)});
  if (!r.ok) { $("status").textContent = "not saved: " + r.status; return; }
  if (decision !== "skip") it.decision = decision;
  $("status").textContent = `${decision} saved for ${it.path}`; $("reason").value = "";
  const next = view.findIndex((i, k) => k > pos && !i.decision);
  pos = next >= 0 ? next : Math.min(pos + 1, view.length - 1); show(); grid();
}
function grid() {
  $("grid").innerHTML = view.map((it, k) => `<span class="tile ${it.decision}" data-k="${k}" ` +
    `title="${it.label} ${it.method}"><img src="${img(it.id, "synthetic")}"></span>`).join("");
  for (const t of $("grid").querySelectorAll(".tile")) t.onclick = () => { pos = +t.dataset.k; toggle(false); show(); };
}
function toggle(on) { $("grid").style.display = on ? "block" : "none"; $("single").style.display = on ? "none" : "block"; }
$("accept").onclick = () => decide("accept"); $("reject").onclick = () => decide("reject");
$("skip").onclick = () => decide("skip");
$("prev").onclick = () => { pos = Math.max(0, pos - 1); show(); };
$("next").onclick = () => { pos = Math.min(view.length - 1, pos + 1); show(); };
$("grid-toggle").onclick = () => toggle($("grid").style.display === "none");
$("filter-class").onchange = refilter; $("filter-method").onchange = refilter;
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  const k = e.key;
  if (k === "a") decide("accept"); else if (k === "r") decide("reject"); else if (k === "s") decide("skip");
  else if (k === "ArrowLeft") $("prev").click(); else if (k === "ArrowRight") $("next").click();
  else if (k === "g") $("grid-toggle").click();
});
$("mask").onerror = () => { $("mask").style.display = $("mask-title").style.display = "none"; };  // no mask known
load();
</script></body></html>"""

STUDY = """<!doctype html><html><head><meta charset="utf-8"><title>Reader study · {{ title }}</title>
<style>{{ style }}</style></head><body>
<header><h2 style="margin:0">Reader study · real or synthetic?</h2>
<label>Your name <input id="reader" size="14"></label><button id="start">Start</button>
<progress id="study-progress" value="0" max="1"></progress><span id="study-count"></span></header>
<div id="panel" style="display:none">
<img id="study-image" class="big" alt="image to judge">
<p><button id="answer-real">Real <kbd>1</kbd></button><button id="answer-synthetic">Synthetic <kbd>2</kbd></button>
<label>Class (optional) <select id="study-class"><option value="">–</option>
{% for c in classes %}<option>{{ c }}</option>{% endfor %}</select></label></p></div>
<div id="done" style="display:none"><h3>Thank you: every image is answered.</h3></div>
<script>
const TOKEN = {{ token|tojson }}; const H = {"X-Token": TOKEN, "Content-Type": "application/json"};
const $ = (id) => document.getElementById(id);
let items = [], todo = [], reader = "";
async function start() {
  reader = $("reader").value.trim(); if (!reader) return;
  items = await (await fetch("/api/study/items", {headers: H})).json();
  const p = await (await fetch("/api/study/progress?reader=" + encodeURIComponent(reader), {headers: H})).json();
  const seen = new Set(p.answered); todo = items.map(i => i.item).filter(k => !seen.has(k));
  $("panel").style.display = "block"; next();
}
function next() {
  const done = items.length - todo.length;
  $("study-progress").max = Math.max(1, items.length); $("study-progress").value = done;
  $("study-count").textContent = ` ${done} / ${items.length}`;
  if (!todo.length) { $("panel").style.display = "none"; $("done").style.display = "block"; return; }
  $("study-image").src = `/study/image/${todo[0]}?token=${encodeURIComponent(TOKEN)}`;
  $("study-image").dataset.item = todo[0]; $("study-class").value = "";
}
async function answer(kind) {
  if (!todo.length || !reader) return;
  const body = {reader, item: todo[0], answer: kind, class_answer: $("study-class").value};
  const r = await fetch("/api/study/answer", {method: "POST", headers: H, body: JSON.stringify(body)});
  if (r.ok) { todo.shift(); next(); }
}
$("start").onclick = start;
$("answer-real").onclick = () => answer("real"); $("answer-synthetic").onclick = () => answer("synthetic");
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (e.key === "1") answer("real"); else if (e.key === "2") answer("synthetic");
});
</script></body></html>"""


def render(page: str, **values) -> str:
    """A page with its values filled in (Jinja, autoescaped)."""
    return render_template_string(page, style=STYLE, **values)
