// gitops-incidents: times in the reader's own time zone, and how long ago. The page
// reads right without this script (times in UTC); it changes text only, no markup.
(function () {
  "use strict";
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60]];
  function ago(seconds, format) {
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) {
        return format.format(-Math.round(seconds / units[i][1]), units[i][0]);
      }
    }
    return format.format(0, "minute");
  }
  function localize(root) {
    var format = window.Intl && Intl.RelativeTimeFormat
      ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
    var times = root.querySelectorAll("time[datetime]:not([data-gi-local])");
    for (var i = 0; i < times.length; i++) {
      var node = times[i];
      var when = new Date(node.getAttribute("datetime"));
      if (isNaN(when.getTime())) { continue; }
      node.setAttribute("data-gi-local", "");
      node.title = node.getAttribute("datetime") + " (UTC) = " + when.toLocaleString() + " (your time)";
      if (format && node.closest(".gi-meta, .gi-card-facts, .gi-overall")) {
        var note = document.createElement("span");
        note.className = "gi-ago";
        note.textContent = " · " + ago((Date.now() - when.getTime()) / 1000, format);
        node.after(note);
      }
    }
  }
  if (window.document$ && window.document$.subscribe) {
    window.document$.subscribe(function () { localize(document); });  // Material's instant pages
  } else {
    document.addEventListener("DOMContentLoaded", function () { localize(document); });
  }
})();
