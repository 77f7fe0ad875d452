// The little JavaScript the dashboard needs. Pages work without it; this only keeps live
// fragments in order: a fragment whose data-seq is older than what the page shows is dropped.
(function () {
  "use strict";
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var incoming = evt.detail.fragment && evt.detail.fragment.firstElementChild
      ? evt.detail.fragment.firstElementChild : null;
    var target = evt.detail.target;
    if (!incoming || !target || !incoming.dataset || !target.dataset) return;
    var newSeq = parseInt(incoming.dataset.seq || "", 10);
    var oldSeq = parseInt(target.dataset.seq || "", 10);
    if (!isNaN(newSeq) && !isNaN(oldSeq) && newSeq < oldSeq) {
      evt.detail.shouldSwap = false;
    }
  });
})();
