// Draw every Plotly figure of the page: the figure JSON sits in <script type="application/json">
// blocks (data, never executed) built by the server; plotly.min.js is served by this app.
(function () {
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-figure"));
      if (!source) { return; }
      var fig = JSON.parse(source.textContent);
      window.Plotly.newPlot(el, fig.data || [], fig.layout || {},
        {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"]});
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
