/* Atalaya charts: draws the Plotly figures that the server built (JSON in <script type="application/json">),
   on page load and again after htmx swaps new results in. Every chart also has its data as a table and a
   CSV link, so the page works without this file. */
(function () {
  "use strict";

  var CONFIG = {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
  };

  function draw(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-chart]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-chart"));
      if (!source) return;
      var figure;
      try {
        figure = JSON.parse(source.textContent);
      } catch (error) {
        return;
      }
      window.Plotly.react(element, figure.data, figure.layout, CONFIG).then(function () {
        element.setAttribute("data-drawn", "true");
      });
    });
  }

  function purge(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-chart]").forEach(function (element) {
      window.Plotly.purge(element);
    });
  }

  // Custom dates: choosing a date switches the period to "Custom dates".
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-custom-date]")) return;
    var form = input.closest("form");
    var range = form && form.querySelector("select[name=range]");
    if (range && range.value !== "custom") range.value = "custom";
  }, true);

  document.addEventListener("htmx:beforeSwap", function (event) {
    purge(event.detail.target);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    draw(event.detail.target);
  });
  // Back and forward: htmx puts back a copy of the page's HTML, with the filters as first rendered:
  // set them from the address again, so they say what the figures show.
  function syncFilters() {
    var params = new URLSearchParams(window.location.search);
    document.querySelectorAll("form[data-costs-filters]").forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (!field.name) return;
        var values = params.getAll(field.name);
        if (field.type === "checkbox" || field.type === "radio") {
          field.checked = values.indexOf(field.value) !== -1;
        } else if (field.tagName === "SELECT") {
          field.value = values.length ? values[0] : (field.options[0] && field.options[0].value) || "";
          if (field.selectedIndex === -1) field.selectedIndex = 0;
        } else if (field.type !== "submit" && field.type !== "button" && field.type !== "hidden") {
          field.value = values.length ? values[0] : "";
        }
      });
    });
  }

  // Before htmx keeps a copy of the page for the back button, empty the drawn charts and remove Plotly's
  // text-measuring <svg> from the body: both carry style="" attributes, which the content security policy
  // refuses when htmx puts the copy back. Charts are drawn again on restore (below), the results with
  // their charts are about to be replaced, and Plotly makes its measuring element again when it draws.
  document.addEventListener("htmx:beforeHistorySave", function () {
    document.querySelectorAll("[data-chart][data-drawn]").forEach(function (element) {
      if (window.Plotly) window.Plotly.purge(element);
      element.textContent = "";
      element.removeAttribute("data-drawn");
      element.classList.remove("js-plotly-plot");
    });
    var tester = document.getElementById("js-plotly-tester");
    if (tester) tester.remove();
  });

  document.addEventListener("htmx:historyRestore", function () {
    syncFilters();
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      element.textContent = "";
      element.removeAttribute("data-drawn");
      element.classList.remove("js-plotly-plot");
    });
    draw(document);
  });
  // The figures are drawn after the page's layout is known, so charts take their cards' width.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else {
    draw(document);
  }
})();
