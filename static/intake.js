/* Intake: show and hide follow-up questions as the patient answers, on the same page.
   Progressive enhancement only: without JavaScript every follow-up stays visible and the server
   decides what is enabled (it ignores answers to questions the earlier answers do not enable). */
(function () {
  "use strict";
  var form = document.querySelector("form[data-live]");
  if (!form) { return; }

  function values(name) {
    var out = [];
    var fields = form.querySelectorAll("[name='" + name + "']");
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i];
      // A question hidden because its own trigger is off counts as unanswered (a relatives question
      // unticked above hides its age question too). Blocks are updated in page order, triggers first.
      if (el.closest("[data-when][hidden]")) { continue; }
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked) { out.push(el.value); }
      } else if (el.value !== "") {
        out.push(el.value);
      }
    }
    return out;
  }

  function met(c) {
    var vs = values(c.f);
    if (c.op === "exists") { return (vs.length > 0) === (c.v === "true"); }
    return vs.some(function (v) {
      switch (c.op) {
        case "=": return v === c.v;
        case "!=": return v !== c.v;
        case ">": return Number(v) > Number(c.v);
        case "<": return Number(v) < Number(c.v);
        case ">=": return Number(v) >= Number(c.v);
        case "<=": return Number(v) <= Number(c.v);
        default: return true;
      }
    });
  }

  function update() {
    var blocks = form.querySelectorAll("[data-when]");
    for (var i = 0; i < blocks.length; i++) {
      var rule = JSON.parse(blocks[i].getAttribute("data-when"));
      var on = rule.all ? rule.when.every(met) : rule.when.some(met);
      blocks[i].hidden = !on;
    }
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
}());

/* Error summary (after the GOV.UK Design System's): it gets the focus when the page loads (the
   autofocus attribute does that too), and following one of its links moves the focus to the
   question's input (a radio group's first radio) with its label or legend scrolled into view,
   not just the input at the very top of the screen. A page opened at a question (the review
   page's Change and problem links: /intake/...#q-...) starts the same way, at that question. */
(function () {
  "use strict";

  function inputFor(target) {
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName)) { return target; }
    return target.querySelector("input:not([type=hidden]), select, textarea");
  }

  function titleFor(input) {
    var fieldset = input.closest("fieldset");
    var legend = fieldset && fieldset.querySelector("legend");
    if (legend) {
      // A long fieldset on a small screen: scrolling to the legend would hide the input again.
      var legendTop = legend.getBoundingClientRect().top;
      var inputRect = input.getBoundingClientRect();
      if (inputRect.top + inputRect.height - legendTop < window.innerHeight / 2) { return legend; }
    }
    return document.querySelector("label[for='" + input.id + "']") || legend || input;
  }

  /* Focus the question `id` names, its label or legend in view; false if there is none. */
  function goTo(id) {
    var target = id && document.getElementById(id);
    var input = target && inputFor(target);
    if (!input) { return false; }
    titleFor(input).scrollIntoView();
    input.focus({preventScroll: true});
    return true;
  }

  function fragment(href) {
    try { return decodeURIComponent(href.slice(1)); } catch (e) { return ""; }
  }

  var summary = document.querySelector(".error-summary");
  if (summary) {
    if (document.activeElement !== summary) { summary.focus(); }
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a");
      var href = link ? link.getAttribute("href") : "";
      // Links to other pages are left alone: that page starts at the question (below).
      if (href && href.charAt(0) === "#" && goTo(fragment(href))) { event.preventDefault(); }
    });
  } else if (location.hash.length > 1 && document.querySelector("form[data-live]")) {
    // After the browser's own jump to the fragment (which puts the radio at the very top).
    var id = fragment(location.hash);
    if (document.readyState === "complete") { goTo(id); } else {
      window.addEventListener("load", function () { window.setTimeout(function () { goTo(id); }, 0); });
    }
  }
}());

/* Exclusive check boxes (after govuk-frontend's checkboxes): ticking "None of these" unticks the
   other boxes of the question, ticking another box unticks "None of these". The server refuses
   the two together anyway (with JavaScript off too); this only saves the patient the error.
   Listens in the capture phase, so the follow-ups above see the boxes as they end up. */
(function () {
  "use strict";
  function boxesOf(input) {
    var group = input.closest("[data-exclusive-group]");
    return group ? group.querySelectorAll("input[type=checkbox][name='" + input.name + "']") : [];
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input || input.type !== "checkbox" || !input.checked || !input.closest("[data-exclusive-group]")) {
      return;
    }
    var exclusive = input.getAttribute("data-behaviour") === "exclusive";
    var boxes = boxesOf(input);
    for (var i = 0; i < boxes.length; i++) {
      var other = boxes[i];
      if (other !== input && (exclusive || other.getAttribute("data-behaviour") === "exclusive")) {
        other.checked = false;
      }
    }
  }, true);
}());
