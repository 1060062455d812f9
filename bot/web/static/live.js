// The overview's figures, kept up to date by server-sent events (/live). Without this script
// the page still shows the figures as they were when it opened.
"use strict";
(function () {
  var figures = document.getElementById("figures");
  var status = document.getElementById("live-status");
  if (!figures || !window.EventSource) {
    return;
  }
  var source = new EventSource(figures.getAttribute("data-live"));
  source.addEventListener("figures", function (event) {
    figures.innerHTML = event.data;
    figures.setAttribute("data-updated", String(Date.now()));
  });
  source.addEventListener("open", function () {
    status.textContent = "These figures update by themselves.";
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      status.textContent = "Live updates have stopped. Reload the page to see new figures.";
    }
  });
})();
