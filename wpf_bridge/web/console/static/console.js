// The console's live parts, without a build step: [data-refresh] elements reload their HTML from
// that URL every few seconds (data-every ms; until they hold a [data-done] element), [data-progress] follows a background replay.
(function () {
  "use strict";
  var EVERY = 3000;

  function load(element, url, timer) {
    return fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "console"}})
      .then(function (response) {
        if (response.redirected || response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        element.innerHTML = html;
        if (element.querySelector("[data-done]")) { window.clearInterval(timer); }  // it will not change again
      })
      .catch(function () { /* the next round tries again */ });
  }

  document.querySelectorAll("[data-refresh]").forEach(function (element) {
    if (element.querySelector("[data-done]")) { return; }
    var timer = window.setInterval(function () {
      if (!document.hidden) { load(element, element.getAttribute("data-refresh"), timer); }
    }, Number(element.getAttribute("data-every")) || EVERY);
  });

  document.querySelectorAll("[data-progress]").forEach(function (element) {
    var bar = element.querySelector("progress"), text = element.querySelector(".progress-text");
    var timer = window.setInterval(function () {
      fetch(element.getAttribute("data-progress"), {credentials: "same-origin"})
        .then(function (response) { return response.json(); })
        .then(function (state) {
          bar.max = Math.max(state.matched, 1);
          bar.value = state.done;
          text.textContent = state.done + " of " + state.matched + " replayed" + (state.finished ? " (finished)" : "");
          if (state.finished) { window.clearInterval(timer); }
        })
        .catch(function () {});
    }, 1000);
  });

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (navigator.clipboard) { navigator.clipboard.writeText(source.textContent.trim()); }
      button.textContent = "copied";
    });
  });
})();
