/* Atalaya console: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // htmx: send Django's CSRF token with every request it makes.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // htmx: if the session expired, a request lands on the sign-in page: load it as a whole page.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var login = document.body.getAttribute("data-login-url");
    var xhr = event.detail.xhr;
    if (login && xhr && xhr.responseURL && new URL(xhr.responseURL).pathname === login) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  // After htmx replaces a list, say what changed (e.g. "3 prompts found") in the live region,
  // instead of making screen readers read the whole table again.
  document.addEventListener("htmx:afterSwap", function (event) {
    var marker = event.detail.target && event.detail.target.querySelector("[data-announce]");
    if (marker) announce(marker.getAttribute("data-announce"));
  });

  // Forms that ask before doing something irreversible: <form data-confirm="…">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Live region for short announcements ("Copied").
  function announce(text) {
    var region = document.getElementById("live-region");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  // Copy buttons: <button data-copy-target="#id" data-copied-text="Copied">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy-target"));
    if (!field) return;
    var text = field.value !== undefined ? field.value : field.textContent;
    var done = function () {
      var label = button.getAttribute("data-copied-text") || "Copied";
      var original = button.textContent;
      button.textContent = label;
      announce(label);
      window.setTimeout(function () { button.textContent = original; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { field.select(); });
    } else {
      field.focus();
      field.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    }
  });

  // Version editor: add and remove message rows in the browser (the server does it without JS).
  function renumber(container) {
    var rows = container.querySelectorAll("[data-message-row]");
    rows.forEach(function (row, index) {
      row.querySelectorAll("[data-index-attr]").forEach(function (el) {
        el.getAttribute("data-index-attr").split(" ").forEach(function (attr) {
          var template = el.getAttribute("data-" + attr + "-template");
          if (template) el.setAttribute(attr, template.replace(/__n__/g, String(index)));
        });
      });
      row.querySelectorAll("[data-message-number]").forEach(function (el) {
        el.textContent = String(index + 1);
      });
      var remove = row.querySelector("[data-remove-message]");
      if (remove) remove.disabled = rows.length <= 1;
    });
  }

  function refreshPreview(form) {
    form.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-message]");
    var remove = event.target.closest("[data-remove-message]");
    if (!add && !remove) return;
    var form = event.target.closest("form");
    var container = form && form.querySelector("[data-messages]");
    if (!container) return;
    event.preventDefault();
    if (add) {
      var template = document.getElementById("message-row-template");
      var fragment = template.content.cloneNode(true);
      container.appendChild(fragment);
      renumber(container);
      var rows = container.querySelectorAll("[data-message-row]");
      var textarea = rows[rows.length - 1].querySelector("textarea");
      if (textarea) textarea.focus();
    } else {
      var row = remove.closest("[data-message-row]");
      var next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber(container);
      var focusTarget = next && next.querySelector("select, textarea");
      if (focusTarget) focusTarget.focus();
      announce(remove.getAttribute("data-removed-text") || "");
    }
    refreshPreview(form);
  });

  // Enter in a preview sample value must not save the draft.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.matches && event.target.matches("[data-preview-sample]")) {
      event.preventDefault();
    }
  });

  // Side-by-side diffs: the translated words that screen readers hear around a change, from the table's
  // data-del-start… attributes into CSS properties (set through the DOM: the content security policy
  // refuses style="" attributes in the markup).
  var DIFF_WORDS = ["del-start", "del-end", "ins-start", "ins-end"];
  function labelDiffs(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("table.diff[data-del-start]").forEach(function (table) {
      DIFF_WORDS.forEach(function (name) {
        var value = table.getAttribute("data-" + name);
        if (value !== null) table.style.setProperty("--" + name, JSON.stringify(value));
      });
    });
  }
  document.addEventListener("htmx:load", function (event) { labelDiffs(event.target); });

  document.addEventListener("DOMContentLoaded", function () {
    labelDiffs(document);
    // With JavaScript, adding and removing rows happens here, so these are plain buttons.
    document.querySelectorAll("[data-add-message], [data-remove-message]").forEach(function (button) {
      button.type = "button";
    });
    document.querySelectorAll("[data-messages]").forEach(renumber);
  });
})();
