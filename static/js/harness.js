// The little JavaScript the dashboard needs. Pages work without it (links, forms, a refresh shows
// the state); this keeps live fragments in order and the websocket connected.
(function () {
  "use strict";

  function seqOf(el) {
    var n = parseInt((el && el.getAttribute && el.getAttribute("data-seq")) || "", 10);
    return isNaN(n) ? null : n;
  }

  // 1. Ordering. A replacement (same id) older than what the page shows is dropped. An insertion
  //    (beforeend/afterbegin into a list) skips children already on the page, because the
  //    catch-up after a reconnect may resend nodes, rows or events the page already has.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var d = evt.detail, frag = d.fragment, target = d.target;
    if (!frag || !target) return;
    var first = frag.firstElementChild;
    if (first && first.id && first.id === target.id) {
      var incoming = seqOf(first), current = seqOf(target);
      if (incoming !== null && current !== null && incoming < current) d.shouldSwap = false;
      return;
    }
    Array.prototype.slice.call(frag.children).forEach(function (el) {
      if (el.id && document.getElementById(el.id)) el.parentNode.removeChild(el);
    });
  });

  // 1b. Kept input. A live swap of a panel holding forms (the inbox's bulk decisions) keeps what
  //    was chosen or typed in its [data-keep] fields: the new copy gets the values as attributes.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var frag = evt.detail.fragment, target = evt.detail.target;
    if (!frag || !target || !target.querySelectorAll) return;
    target.querySelectorAll("[data-keep][id]").forEach(function (el) {
      var copy = frag.querySelector("#" + CSS.escape(el.id));
      if (!copy) return;
      if (copy.tagName === "SELECT") {
        copy.querySelectorAll("option").forEach(function (o) {
          if (o.value === el.value) o.setAttribute("selected", "");
          else o.removeAttribute("selected");
        });
      } else {
        copy.setAttribute("value", el.value);
      }
    });
  });

  // 2. Bounded lists: the event feed keeps its newest N items in the DOM; older ones are one
  //    click away on the paginated log. The empty-state row goes once a real row arrives.
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("[data-max]").forEach(function (list) {
      var max = parseInt(list.getAttribute("data-max"), 10) || 50;
      var empty = list.querySelector(".feed-empty");
      if (empty && list.children.length > 1) empty.remove();
      while (list.children.length > max) list.removeChild(list.lastElementChild);
    });
    var emptyRow = document.getElementById("runs-empty");
    if (emptyRow && emptyRow.parentNode.children.length > 1) emptyRow.remove();
    applyTreeLive();
  });

  // 3. Connection. htmx reconnects only after abnormal closes; a server restart or an idle
  //    timeout can close with 1000/1001, after which it would stay silent. Reconnect on any close
  //    that is not ours (4401/4403 = refused) and not the page going away.
  //    htmx's own backoff doubles up to 64 s: a page that lost a restarting server for 20 s
  //    could then wait a minute more. Cap the wait at 5 s (with jitter, so pages spread out).
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retryCount) {
      return Math.min(1000 * Math.pow(2, retryCount), 5000) * (0.5 + Math.random() / 2);
    };
  }
  var unloading = false;
  window.addEventListener("pagehide", function () { unloading = true; });
  window.addEventListener("beforeunload", function () { unloading = true; });
  function setLive(state) {
    document.querySelectorAll("[data-live-indicator]").forEach(function (el) {
      el.setAttribute("data-state", state);
    });
    document.documentElement.setAttribute("data-ws", state);
  }
  // On every (re)connect, tell the run consumer up to which seq the tree and feed are complete
  // (#live-seq, moved only by complete delta pushes) so its catch-up sends just what was missed.
  document.addEventListener("htmx:wsOpen", function (evt) {
    setLive("open");
    var marker = document.getElementById("live-seq");
    var wrapper = evt.detail && evt.detail.socketWrapper;
    if (marker && wrapper) {
      wrapper.send(JSON.stringify({ since: parseInt(marker.getAttribute("data-seq"), 10) || 0 }));
    }
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    if (unloading || code === 4401 || code === 4403) { setLive("closed"); return; }
    setLive("reconnecting");
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) return; // htmx retries these itself
    var wrapper = evt.detail && evt.detail.socketWrapper;
    if (wrapper && wrapper.reconnect) {
      setTimeout(function () { if (!unloading) wrapper.reconnect(); }, 500 + Math.random() * 1500);
    }
  });
  // The re-rendered header resets the indicator's text; keep its state across swaps.
  document.addEventListener("htmx:oobAfterSwap", function () {
    var state = document.documentElement.getAttribute("data-ws");
    if (state) setLive(state);
  });

  // 4. The agent tree. Live rows arrive in #tree-live: each replaces the row with its id if the
  //    page shows it (and it is not older), or is dropped (its group is closed or not loaded: the
  //    group's own row carries the counts). A new agent ([data-append]) joins its parent's list
  //    only if that list is loaded whole (no "show more" button); otherwise it is fetched with
  //    the list. Groups load their children when first opened (hx-get on <details>).
  function applyTreeLive() {
    var live = document.getElementById("tree-live");
    if (!live || !live.firstElementChild) return;
    Array.prototype.slice.call(live.children).forEach(function (el) {
      // Out of the page first: while in #tree-live, getElementById would find these copies.
      live.removeChild(el);
      var into = el.getAttribute("data-append");
      if (into) {
        var list = document.getElementById(into);
        if (!list || list.querySelector(":scope > .lazy, :scope > .more")) return;
        Array.prototype.slice.call(el.children).forEach(function (li) {
          if (li.id && document.getElementById(li.id)) return;
          list.appendChild(li);
          if (window.htmx) window.htmx.process(li);
        });
        return;
      }
      var current = el.id && document.getElementById(el.id);
      if (!current) return;
      var incoming = seqOf(el), shown = seqOf(current);
      if (incoming !== null && shown !== null && incoming < shown) return;
      current.replaceWith(el);
    });
  }
  // "Clear" without JS reloads the page; with it, the search box and results just empty.
  document.addEventListener("click", function (evt) {
    var clear = evt.target.closest && evt.target.closest("[data-search-clear]");
    if (!clear) return;
    evt.preventDefault();
    var form = document.querySelector(".tree-filter");
    if (form) form.reset();
    form && form.querySelectorAll("input[type=search]").forEach(function (i) { i.value = ""; });
    form && form.querySelectorAll("select").forEach(function (s) { s.value = ""; });
    var results = document.getElementById("tree-search");
    if (results) results.replaceChildren();
  });
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest && evt.target.closest("[data-tree-toggle]");
    if (!btn) return;
    document.querySelectorAll("#kids-root details[open]").forEach(function (d) { d.open = false; });
  });

  // 5. Confirm destructive actions (the server still checks permissions and state).
  document.addEventListener("submit", function (evt) {
    var msg = evt.target.getAttribute && evt.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) evt.preventDefault();
  });

  // 6. Launch form: picking a playbook pre-selects its own aggregation chain and limits (only
  //    while the user has not edited them; the server applies the same defaults anyway), and
  //    shows only its own options (without JS all are shown, each naming its playbooks; the
  //    server ignores the options of other playbooks). The estimate panel refreshes itself
  //    through htmx on any change of the form.
  var LIMITS = [
    ["max_concurrency", "data-concurrency"], ["max_depth", "data-depth"],
    ["max_agents", "data-max-agents"]
  ];
  function showPlaybookOptions() {
    var radio = document.querySelector("input[name=playbook][data-chain]:checked");
    if (!radio) return;
    document.querySelectorAll(".launch-option[data-playbooks]").forEach(function (el) {
      el.hidden = el.getAttribute("data-playbooks").split(" ").indexOf(radio.value) < 0;
    });
  }
  document.addEventListener("change", function (evt) {
    var radio = evt.target;
    if (!radio.matches || !radio.matches("input[name=playbook][data-chain]")) return;
    var chain = radio.getAttribute("data-chain").split(" ");
    document.querySelectorAll("input[name=aggregation]").forEach(function (box) {
      box.checked = chain.indexOf(box.value) >= 0;
    });
    LIMITS.forEach(function (pair) {
      var input = document.querySelector("input[name=" + pair[0] + "]");
      var value = radio.getAttribute(pair[1]);
      if (input && value && !input.dataset.touched) {
        // The playbook's default, never above the field's own max (HARNESS_MAX_AGENTS).
        var max = parseInt(input.getAttribute("max"), 10);
        input.value = isNaN(max) ? value : Math.min(parseInt(value, 10), max);
      }
    });
    showPlaybookOptions();
  });
  document.addEventListener("input", function (evt) {
    var name = evt.target.name;
    if (LIMITS.some(function (pair) { return pair[0] === name; })) {
      evt.target.dataset.touched = "1";
    }
  });
  // The over-budget warning's button: with JS it fills the budget field (the estimate then
  // refreshes on the change); without JS it posts the form to the estimate with that budget.
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest && evt.target.closest("[data-fill-budget]");
    var input = btn && document.querySelector("#launch-form input[name=budget_usd]");
    if (!input) return;
    evt.preventDefault();
    input.value = btn.getAttribute("data-fill-budget");
    input.dispatchEvent(new Event("change", { bubbles: true }));
    input.focus();
  });
  // The estimate re-renders the document select out of band: keep it hidden if it should be.
  document.addEventListener("htmx:oobAfterSwap", showPlaybookOptions);

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    showPlaybookOptions();
  });
})();
