// carehook admin UI: a little plain script on top of pages that work without it.
// Everything it writes into the page goes through textContent, never HTML.
"use strict";

// Forms that destroy or resend something ask first.
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
});

function setText(id, text) {
  var el = document.getElementById(id);
  if (el) el.textContent = text || "";
}

// The preview panel (the editor's and the preset form's), from the server's answer.
function showRequest(res) {
  setText("preview-error", "");
  var req = res.request;
  setText("preview-line", req.method + " " + req.url);
  var tbody = document.querySelector("#preview-headers tbody");
  tbody.textContent = "";
  req.headers.forEach(function (h) {
    var tr = document.createElement("tr");
    var th = document.createElement("th");
    th.scope = "row";
    th.textContent = h[0];
    var td = document.createElement("td");
    td.textContent = h[1];
    tr.appendChild(th); tr.appendChild(td);
    tbody.appendChild(tr);
  });
  setText("preview-body", req.body);
  setText("preview-conditions", res.conditions_match ? "" :
    "The conditions do not hold for these example values: such an event would not be sent.");
}

// Posts a form to its data-preview address as it changes; `then` gets the latest answer.
// Answers the function that schedules a refresh.
function livePreview(form, then) {
  var timer = null, seq = 0;
  function refresh() {
    var mine = ++seq;
    fetch(form.getAttribute("data-preview"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form))
    }).then(function (r) {
      if (r.redirected || !r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (res) {
      if (mine === seq) then(res);
    }).catch(function (e) {
      if (mine === seq) setText("preview-error", "The preview is not available (" + e.message + "); reload the page if your session ended.");
    });
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  return schedule;
}

// Simple mode: the preset form's preview follows what is typed.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("preset-form");
  if (!form) return;
  livePreview(form, function (res) {
    if (res.ok) showRequest(res);
    else setText("preview-error", "Cannot build the request yet: " + res.error.message);
  });
});

document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("webhook-form");
  if (!form) return;

  // The template field the admin was last in; variables go there.
  var target = document.getElementById("f-body");
  form.addEventListener("focusin", function (ev) {
    if (ev.target.classList && ev.target.classList.contains("tpl")) target = ev.target;
  });

  function insert(name) {
    var text = "{{" + name + "}}";
    var start = target.selectionStart, end = target.selectionEnd;
    if (typeof start !== "number") { start = end = target.value.length; }
    target.value = target.value.slice(0, start) + text + target.value.slice(end);
    target.focus();
    target.setSelectionRange(start + text.length, start + text.length);
    target.dispatchEvent(new Event("input", { bubbles: true }));
  }
  document.getElementById("vars").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-var]");
    if (b) insert(b.getAttribute("data-var"));
  });

  // Rows: add a blank copy of the last row; remove one.
  form.addEventListener("click", function (ev) {
    var add = ev.target.closest("button[data-add]");
    if (add) {
      var rows = document.getElementById(add.getAttribute("data-add"));
      var last = rows.querySelector(".row:last-child");
      var copy = last.cloneNode(true);
      copy.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      rows.appendChild(copy);
      copy.querySelector("input").focus();
      return;
    }
    var rm = ev.target.closest("button[data-remove]");
    if (rm) {
      var row = rm.closest(".row");
      var box = row.parentNode;
      if (box.querySelectorAll(".row").length > 1) row.remove();
      else row.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      schedule();
    }
  });

  // Only the chosen auth type's inputs are shown.
  var authType = document.getElementById("f-auth_type");
  function showAuth() {
    document.querySelectorAll("[data-auth]").forEach(function (d) {
      d.hidden = d.getAttribute("data-auth").split(" ").indexOf(authType.value) < 0;
    });
  }
  authType.addEventListener("change", showAuth);
  showAuth();

  // "Any event" makes the single choices moot.
  var any = document.getElementById("f-any");
  function showEvents() {
    form.querySelectorAll("input[name=events]").forEach(function (c) { c.disabled = any.checked; });
  }
  any.addEventListener("change", showEvents);
  showEvents();

  // Live preview: the form as it is now, rendered by the server.
  var schedule = livePreview(form, function (res) {
    clearErrors();
    if (res.variables) fillVars(res.variables);
    if (res.events) fillEvents(res.events, res.event);
    if (!res.ok) { showError(res.error); return; }
    showRequest(res);
  });
  var previewEvent = document.getElementById("preview_event");
  if (previewEvent) previewEvent.addEventListener("change", schedule);

  function clearErrors() {
    form.querySelectorAll("p.error").forEach(function (p) { p.textContent = ""; p.removeAttribute("role"); });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }
  function showError(err) {
    var slot = document.getElementById("error-" + err.anchor) || document.getElementById("error-form");
    slot.textContent = err.message;
    // An error in a folded part (Advanced) unfolds it.
    var fold = slot.closest("details");
    if (fold) fold.open = true;
    var field = document.getElementById("f-" + err.anchor);
    if (field) field.setAttribute("aria-invalid", "true");
    setText("preview-error", "Cannot build the request: " + err.message);
  }
  function fillVars(list) {
    var box = document.getElementById("vars");
    box.textContent = "";
    list.forEach(function (v) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = (v.partial ? "var partial " : "var ") + v.sensitivity;
      b.setAttribute("data-var", v.name);
      b.title = v.tip;
      b.textContent = v.name;
      if (v.sensitivity !== "none") {
        var badge = document.createElement("span");
        badge.className = "sens " + v.sensitivity;
        badge.textContent = v.sensitivity;
        b.appendChild(document.createTextNode(" "));
        b.appendChild(badge);
      }
      box.appendChild(b);
    });
  }
  function fillEvents(names, current) {
    [document.getElementById("preview_event")].forEach(function (sel) {
      if (!sel) return;
      var same = names.length === sel.options.length &&
        names.every(function (n, i) { return sel.options[i].value === n; });
      if (same) return;
      sel.textContent = "";
      names.forEach(function (n) {
        var o = document.createElement("option");
        o.textContent = n;
        if (n === current) o.selected = true;
        sel.appendChild(o);
      });
    });
  }
});

// "Copy" beside a value shown once (a partner link): hidden without a script or a clipboard.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    var source = document.querySelector(b.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        b.textContent = "Copied";
      }, function () {
        b.textContent = "Copy failed: select it and press Ctrl+C";
      });
    });
  });
});

// "Which clinic?": ticking a clinic means "only these clinics".
document.addEventListener("change", function (ev) {
  var t = ev.target;
  if (t.name !== "clinics" || !t.checked) return;
  var some = document.getElementById("p-clinic-some");
  if (some) some.checked = true;
});
