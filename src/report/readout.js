// Hover read-out: the values of every series nearest the pointer's x. Errors are collected
// into #console-errors so a check of the rendered page sees them.
(function () {
  var errors = document.getElementById("console-errors");
  window.addEventListener("error", function (e) { errors.textContent += "error: " + e.message + "\n"; });
  var charts = document.querySelectorAll("figure.chart");
  charts.forEach(function (fig) {
    var svg = fig.querySelector("svg");
    var out = fig.querySelector("output.readout");
    if (!svg || !out) return;
    var lines = Array.prototype.map.call(fig.querySelectorAll("polyline.series"), function (pl) {
      var px = pl.getAttribute("points").split(" ").map(function (p) { return parseFloat(p.split(",")[0]); });
      var vals = pl.getAttribute("data-values").split(" ").map(function (p) { return p.split(","); });
      return { name: pl.getAttribute("data-name"), px: px, vals: vals };
    });
    svg.addEventListener("mousemove", function (ev) {
      var box = svg.getBoundingClientRect();
      var x = (ev.clientX - box.left) / box.width * svg.viewBox.baseVal.width;
      out.textContent = lines.map(function (l) {
        var best = 0;
        for (var i = 1; i < l.px.length; i++) if (Math.abs(l.px[i] - x) < Math.abs(l.px[best] - x)) best = i;
        return l.name + ": " + l.vals[best][1] + " at " + l.vals[best][0];
      }).join(" · ");
    });
  });
  document.body.setAttribute("data-charts", String(document.querySelectorAll("polyline.series, rect.bar").length));
  document.body.setAttribute("data-ready", "1");
})();
