// The copy button of the one-time secret reveal; the only script of the dashboard.
"use strict";

(function () {
  const RESET_AFTER_MS = 2000;

  function copyBySelection(field) {
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function show(button, text) {
    const original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = text;
    window.setTimeout(function () { button.textContent = original; }, RESET_AFTER_MS);
  }

  function copy(button) {
    const field = document.getElementById(button.dataset.copy);
    if (!field) {
      return;
    }
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        function () { show(button, "Copied"); },
        function () { show(button, copyBySelection(field) ? "Copied" : "Press Ctrl+C"); }
      );
    } else {
      show(button, copyBySelection(field) ? "Copied" : "Press Ctrl+C");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copy(button); });
    });
    document.querySelectorAll("input[readonly][data-select-on-focus], #signing-secret").forEach(function (field) {
      field.addEventListener("focus", function () { field.select(); });
    });
  });
})();
