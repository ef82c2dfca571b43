/* Atalaya: keyboard shortcuts of the annotation page (feedback/annotate.html). The page works without it.
   1–9 choose an option of the current criterion and move to the next; j / k next / previous criterion;
   s skip; Enter submit (Ctrl+Enter inside a text box; Escape leaves the text box). */
(function () {
  "use strict";

  function init() {
    var form = document.querySelector("form[data-annotate]");
    if (!form) return;
    var criteria = Array.prototype.slice.call(form.querySelectorAll("[data-criterion]"));
    var current = 0;

    function activate(index) {
      if (!criteria.length) return;
      current = Math.max(0, Math.min(criteria.length - 1, index));
      criteria.forEach(function (fieldset, i) {
        fieldset.classList.toggle("is-active", i === current);
        if (i === current) fieldset.setAttribute("aria-current", "step");
        else fieldset.removeAttribute("aria-current");
      });
      var active = criteria[current];
      var text = active.querySelector("textarea");
      if (text) text.focus();
      else if (document.activeElement && document.activeElement.tagName === "TEXTAREA") document.activeElement.blur();
      active.scrollIntoView({ block: "nearest" });
    }

    function choose(n) {
      var radios = criteria[current] ? criteria[current].querySelectorAll("input[type=radio]") : [];
      if (n < 1 || n > radios.length) return false;
      radios[n - 1].checked = true;
      radios[n - 1].dispatchEvent(new Event("change", { bubbles: true }));
      if (current < criteria.length - 1) activate(current + 1);
      return true;
    }

    function submit(action) {
      var button = form.querySelector('button[name="action"][value="' + action + '"]');
      if (!button) return;
      if (form.requestSubmit) form.requestSubmit(button);
      else button.click();
    }

    criteria.forEach(function (fieldset, i) {
      fieldset.addEventListener("focusin", function () { if (current !== i) { current = i; activate(i); } });
      fieldset.addEventListener("click", function () { if (current !== i) activate(i); });
    });

    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.metaKey) return;
      var target = event.target;
      var inText = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
      if (inText) {
        if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit("submit"); }
        else if (event.key === "Escape") { target.blur(); }
        return;
      }
      if (event.ctrlKey) return;
      if (/^[1-9]$/.test(event.key)) {
        if (choose(parseInt(event.key, 10))) event.preventDefault();
      } else if (event.key === "j") {
        event.preventDefault(); activate(current + 1);
      } else if (event.key === "k") {
        event.preventDefault(); activate(current - 1);
      } else if (event.key === "s") {
        event.preventDefault(); submit("skip");
      } else if (event.key === "Enter" && !(target && target.tagName === "BUTTON")) {
        event.preventDefault(); submit("submit");
      }
    });

    // Start on the first criterion without a value, with the focus away from the text boxes.
    var firstEmpty = criteria.findIndex(function (fieldset) {
      return !fieldset.querySelector("input:checked") && !fieldset.querySelector("textarea");
    });
    current = firstEmpty < 0 ? 0 : firstEmpty;
    criteria.forEach(function (fieldset, i) { fieldset.classList.toggle("is-active", i === current); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
