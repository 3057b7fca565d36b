// Live refresh: polls the page's JSON endpoint and updates the elements marked data-live.
// No network beyond this dashboard; values are set with textContent (never as HTML).
(function () {
  "use strict";
  var body = document.body;
  var api = body.getAttribute("data-api");
  var seconds = parseFloat(body.getAttribute("data-refresh") || "0");
  var stamp = document.getElementById("live-stamp");
  if (!api || !(seconds > 0)) { return; }

  function pick(data, path) {
    return path.split(".").reduce(function (value, key) {
      return value === null || value === undefined ? undefined : value[key];
    }, data);
  }

  // data-live="list[key=id].field": the row of data.list whose key equals id.
  function lookup(data, path, el) {
    var list = el.getAttribute("data-live-list");
    if (!list) { return pick(data, path); }
    var key = el.getAttribute("data-live-key");
    var id = el.getAttribute("data-live-id");
    var rows = pick(data, list) || [];
    for (var i = 0; i < rows.length; i++) {
      if (String(rows[i][key]) === id) { return rows[i][path]; }
    }
    return undefined;
  }

  function show(value, format) {
    if (value === null || value === undefined) { return format === "pct" ? "n/a" : "unknown"; }
    if (format === "int") { return Number(value).toLocaleString("en-US"); }
    if (format === "pct") { return (Number(value) * 100).toFixed(1) + "%"; }
    return String(value);
  }

  function refresh() {
    fetch(api, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var marked = document.querySelectorAll("[data-live]");
        for (var i = 0; i < marked.length; i++) {
          var el = marked[i];
          var value = lookup(data, el.getAttribute("data-live"), el);
          if (value !== undefined) { el.textContent = show(value, el.getAttribute("data-format")); }
        }
        if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function (error) {
        if (stamp) { stamp.textContent = "refresh failed: " + error.message; }
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();
