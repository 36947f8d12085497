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
