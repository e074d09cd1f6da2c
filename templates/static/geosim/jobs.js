// Jobs page: while any job is open, poll the status endpoint every second and redraw the rows.
(function () {
  "use strict";
  var table = document.getElementById("jobs");
  if (!table) return;
  var body = table.tBodies[0];
  var live = document.getElementById("jobs-live");
  var url = table.dataset.statusUrl;

  function cell(row, content) {
    var td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content;
    row.appendChild(td);
    return td;
  }
  function stamp(iso) {
    if (!iso) return "—";
    var t = document.createElement("time");
    t.dateTime = iso;
    t.textContent = iso.slice(0, 19).replace("T", " ");
    return t;
  }
  function progress(job) {
    var wrap = document.createDocumentFragment();
    var bar = document.createElement("span");
    bar.className = "bar";
    var fill = document.createElement("span");
    var pct = Math.round(Math.max(0, Math.min(1, job.progress)) * 100);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-label", "Job " + job.id + " progress");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(pct));
    fill.style.width = pct + "%";
    bar.appendChild(fill);
    wrap.appendChild(bar);
    var label = document.createElement("span");
    label.className = "pct";
    label.textContent = " " + pct + "%";
    wrap.appendChild(label);
    if (job.note) {
      var note = document.createElement("div");
      note.className = "job-note";
      note.textContent = job.note;
      wrap.appendChild(note);
    }
    if (job.error) {
      var error = document.createElement("div");
      error.className = "job-error";
      error.textContent = job.error;
      wrap.appendChild(error);
    }
    return wrap;
  }
  function render(jobs) {
    var rows = document.createDocumentFragment();
    jobs.forEach(function (job) {
      var row = document.createElement("tr");
      row.dataset.job = job.id;
      row.dataset.status = job.status;
      cell(row, String(job.id));
      cell(row, job.kind);
      var status = document.createElement("span");
      status.className = "status status-" + job.status;
      status.textContent = job.status_display;
      cell(row, status);
      cell(row, progress(job));
      cell(row, job.done + " / " + job.total);
      cell(row, job.created_by || "—");
      cell(row, stamp(job.created_at));
      cell(row, stamp(job.finished_at));
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        render(data.jobs);
        table.dataset.open = data.open ? "1" : "0";
        live.textContent = data.open ? "Updating every second…" : "All jobs finished.";
        if (data.open) setTimeout(poll, 1000);
      })
      .catch(function (error) {
        live.textContent = "Live updates paused (" + error.message + "); reload to retry.";
      });
  }
  if (table.dataset.open === "1") setTimeout(poll, 1000);
})();
