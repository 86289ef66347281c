// The workflow builder's script (CSP: from /static only, no inline code). The builder works
// without it; it adds two things: the merge-field picker inserts {{record.…}} at the cursor
// of the field last focused in its action block, and after htmx swaps the builder in, the
// focus goes where the server said (data-focus), since the pressed button was replaced.
(function () {
  "use strict";
  var lastFocused = new WeakMap();

  // htmx copies "style" attributes while it settles a swap, and under our CSP (no inline
  // styles) each copy is refused with a console error: the builder's inputs pick up an empty
  // style="" in Chromium after a form is swapped, so every later swap logged dozens. No page
  // of ours has an inline style to settle.
  if (window.htmx && htmx.config) {
    htmx.config.attributesToSettle = ["class", "width", "height"];
  }

  function blockOf(element) {
    return element.closest ? element.closest(".action-block") : null;
  }

  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target && target.hasAttribute && target.hasAttribute("data-merge")) {
      var block = blockOf(target);
      if (block) { lastFocused.set(block, target); }
    }
  });

  function insertAtCursor(field, text) {
    var start = field.selectionStart, end = field.selectionEnd;
    if (typeof start !== "number") { start = end = field.value.length; }
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    var caret = start + text.length;
    field.focus();
    field.setSelectionRange(caret, caret);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-insert]") : null;
    if (!button) { return; }
    var picker = document.getElementById(button.getAttribute("data-insert"));
    var block = blockOf(button);
    if (!picker || !block) { return; }
    var field = lastFocused.get(block) || block.querySelector("[data-merge]");
    if (field) { insertAtCursor(field, picker.value); }
  });

  function prepare(root) {
    var buttons = root.querySelectorAll("[data-insert]");
    for (var i = 0; i < buttons.length; i++) { buttons[i].hidden = false; }
    var form = root.id === "builder" ? root : root.querySelector("#builder");
    var focus = form && form.getAttribute("data-focus");
    if (focus) {
      var element = document.getElementById(focus);
      if (element) { element.focus(); }
    }
  }

  // A field typed in makes no round trip of its own (a select does: its change posts the
  // form). After such an edit the Backtest panel and its intro post the form to follow it
  // (hx-trigger "edited from:#builder"): a result of another workflow says it is out of date.
  // The Test and Backtest sections' own fields are no edit of the workflow.
  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target && target.closest ? target.closest("#builder") : null;
    if (!form || !target.name || target.hasAttribute("hx-post") || !window.htmx) { return; }
    if (/^(test|backtest)\./.test(target.name) || target.name === "new_action") { return; }
    htmx.trigger(form, "edited");
  });

  document.addEventListener("DOMContentLoaded", function () { prepare(document); });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "builder") { prepare(event.target); }
  });
})();
