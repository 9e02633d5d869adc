// The dubbing review: each line with its source and translated text, the original and dubbed sound
// at its time, its speed factor and warnings; edit translations and run again (only the edited
// lines are spoken again: the per-line cache keeps the rest).
"use strict";

window.reviewPage = async function reviewPage(main, runId) {
  const {api, postJSON, h, runCard, showError, seconds} = window.cadenza;
  const run = await api(`/runs/${runId}`);
  const report = run.outputs.report;
  if (!report || !report.url) throw new Error(`run ${runId.slice(0, 8)} has no dubbing report (dub_lines.json) to review`);
  const doc = await api(report.url);
  const made = {};  // the `lines` output says which lines came from the per-line cache
  for (const l of (run.outputs.lines && run.outputs.lines.value) || []) made[l.index] = l.cached ? "from cache" : "made";

  const sourceName = run.inputs.video ? "video" : "audio";
  const original = h(sourceName === "video" ? "video" : "audio",
    {class: "original", controls: true, preload: "auto", src: `/runs/${runId}/inputs/${sourceName}`});
  const speech = run.outputs.speech;
  const dubbed = h("audio", {class: "dubbed", controls: true, preload: "auto", src: speech ? speech.url : null});
  let stopAt = null;
  for (const p of [original, dubbed]) {
    p.addEventListener("timeupdate", () => { if (stopAt && p.currentTime >= stopAt.end && stopAt.player === p) { p.pause(); stopAt = null; } });
  }
  function play(player, line) {  // the line's slot of a whole track
    for (const p of [original, dubbed]) p.pause();
    stopAt = {player, end: line.end + 0.25};
    player.currentTime = line.start;
    player.play().catch((e) => showError(e.message));
  }

  const edits = [];
  const rows = doc.lines.map((line, i) => {
    const box = h("textarea", {class: "translation", rows: 2, "data-line": i}, line.translation);
    edits.push(box);
    box.addEventListener("input", () => box.classList.toggle("edited", box.value !== line.translation));
    const speed = `${Number(line.speed_factor).toFixed(2)}×` + (line.action && line.action !== "natural" ? ` (${line.action})` : "");
    return h("tr", {class: "line", "data-line": i},
      h("td", {text: String(line.index)}),
      h("td", {class: "slot", text: `${line.start.toFixed(2)}–${line.end.toFixed(2)} s`}),
      h("td", {class: "source", text: line.source_text || ""}),
      h("td", {}, box, line.spoken_text && line.spoken_text !== line.translation
        ? h("small", {text: `spoken: ${line.spoken_text}`}) : null),
      h("td", {class: "play"}, h("button", {type: "button", text: "▶ original", onclick: () => play(original, line)}),
        h("button", {type: "button", text: "▶ dubbed", disabled: !speech, onclick: () => play(dubbed, line)})),
      h("td", {class: "speed", text: speed}),
      h("td", {class: "made", text: made[line.index] || ""}),
      h("td", {class: "warnings"}, (line.warnings || []).map((w) => h("div", {text: w}))));
  });

  const after = h("div");
  async function rerun() {
    const changed = doc.lines.filter((l, i) => edits[i].value !== l.translation).length;
    if (!changed) { showError("edit a translation first"); return; }
    const edited = {...doc, lines: doc.lines.map((l, i) => ({...l, translation: edits[i].value}))};
    try {
      showError("");
      const next = await postJSON(`/runs/${runId}/rerun`, {inputs: {edits: JSON.stringify(edited)}});
      after.replaceChildren(h("p", {text: `Running again with ${changed} edited line${changed > 1 ? "s" : ""}; the others come from the cache.`}),
        runCard(next.id), h("p", {}, h("a", {href: `#review/${next.id}`, class: "next-review", text: "Review the new run →"})));
    } catch (err) { showError(err.message); }
  }

  main.append(h("h2", {text: `Dubbing review: run ${runId.slice(0, 8)} (into ${doc.language || "?"})`}),
    h("div", {class: "players"}, h("label", {}, "original ", original), h("label", {}, "dubbed speech ", dubbed)),
    h("table", {class: "review"}, h("tr", {}, ["#", "slot", "source", "translation (edit)", "listen", "speed",
      "this run", "warnings"].map((t) => h("th", {text: t}))), rows),
    h("p", {}, h("button", {type: "button", id: "rerun", text: "Run again with my edits", onclick: rerun}),
      " ", h("a", {href: `#run/${runId}`, text: "the run"})), after);
};
