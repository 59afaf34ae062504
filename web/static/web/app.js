// rezcourse web app: small progressive enhancements. Every page works without this
// file (and without htmx); it only makes things smoother. No inline scripts anywhere:
// the Content-Security-Policy allows scripts from our own static files only.
(function () {
  "use strict";

  // Sign-in: a link like /courses/12/#alert-34 comes here as ?next=/courses/12/ (the
  // browser never sends the #fragment to the server). Put the fragment back into
  // "next", so that after signing in the page opens at the alert.
  function keepFragment() {
    var form = document.querySelector("form[data-keep-fragment]");
    if (!form || !window.location.hash) return;
    var next = form.querySelector("input[name=next]");
    if (next && next.value && next.value.indexOf("#") === -1 && next.value.charAt(0) === "/") {
      next.value = next.value + window.location.hash;
    }
  }

  // A page shown again with errors: move the keyboard focus to the first error
  // summary or refusal, so a screen reader announces it and the person lands on it.
  function focusProblem(root) {
    var problem = (root || document).querySelector(".error-summary, .refusal");
    if (problem) {
      problem.focus();
    }
  }

  // After htmx swaps in a fragment (an alert after acknowledge/snooze/resolve), focus
  // it: the button that was pressed no longer exists, and focus must not fall back to
  // the top of the page.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.target;
    if (!target || !target.isConnected || !target.hasAttribute("data-focus-after-swap")) return;
    var problem = target.querySelector(".error-summary, .refusal");
    if (problem) {
      problem.focus();
    } else {
      target.focus();
    }
  });

  // Select the whole feed address when it gets focus, ready to copy.
  function selectOnFocus() {
    var field = document.querySelector("input.feed-url");
    if (field) {
      field.addEventListener("focus", function () { field.select(); });
      field.focus();
    }
  }

  // The timeline is wider than the page (one scale for every course): open it at
  // today, a third in from the left, so what is due next is in view.
  function scrollTimelines() {
    document.querySelectorAll(".gantt-scroll[data-today-x]").forEach(function (box) {
      var today = parseFloat(box.getAttribute("data-today-x"));
      if (!isNaN(today)) {
        box.scrollLeft = Math.max(0, today - box.clientWidth / 3);
      }
    });
  }
  document.addEventListener("htmx:afterSettle", scrollTimelines);

  document.addEventListener("DOMContentLoaded", function () {
    keepFragment();
    focusProblem(document);
    selectOnFocus();
    scrollTimelines();
  });
})();
