/* Staff pages: small progressive enhancements. Every page works without them.

   "Copy link" (the front desk's patient link page): a button[data-copy="<input id>"] with
   data-status="<live region id>" copies that input's value with the Clipboard API. The button is
   rendered `hidden` and shown only where the API exists (HTTPS or localhost); without it the
   read-only box is still there to select and copy by hand. */
(function () {
  "use strict";
  if (!window.isSecureContext || !navigator.clipboard || !navigator.clipboard.writeText) { return; }

  function say(status, text) {
    status.textContent = "";  // emptied first, so a second "Copied" is announced again
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  function enable(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-status"));
    if (!source || !status) { return; }
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.value).then(function () {
        say(status, "Copied");
      }, function () {
        source.focus();
        source.select();
        say(status, "Could not copy. The link is selected: press Ctrl+C (or Cmd+C on a Mac) to copy it.");
      });
    });
    button.hidden = false;
  }

  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) { enable(buttons[i]); }
}());
