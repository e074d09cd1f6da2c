// Search page: drag-and-drop onto the drop zone fills the file input and submits the form.
// Without JavaScript the same form is a plain multipart upload.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var zone = document.getElementById("dropzone");
  var input = document.getElementById("id_image");
  var label = document.getElementById("dropzone-file");
  if (!form || !zone || !input) return;

  function submitWith(name) {
    label.textContent = "Searching with " + name + "…";
    zone.classList.add("busy");
    form.submit();
  }

  input.addEventListener("change", function () {
    if (input.files && input.files.length) submitWith(input.files[0].name);
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (event) {
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) return;
    input.files = files;
    submitWith(files[0].name);
  });
})();

// Region search: drag a box on the query image (or type x,y,w,h; or focus the box and use the arrow
// keys to move it, Shift+arrows to resize it), then "Search this region" re-runs the same query.
(function () {
  "use strict";
  var picker = document.querySelector(".region-picker");
  var input = document.getElementById("id_region");
  var box = document.getElementById("region-box");
  if (!picker || !input || !box) return;
  var frame = picker.querySelector(".framed");
  var width = Number(picker.dataset.width);
  var height = Number(picker.dataset.height);
  var region = null;

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function draw() {
    if (!region) { box.hidden = true; return; }
    box.hidden = false;
    box.style.left = (100 * region[0] / width) + "%";
    box.style.top = (100 * region[1] / height) + "%";
    box.style.width = (100 * region[2] / width) + "%";
    box.style.height = (100 * region[3] / height) + "%";
  }
  function write() { input.value = region ? region.join(",") : ""; }
  function read() {
    var parts = input.value.split(",").map(function (p) { return Number(p.trim()); });
    var ok = parts.length === 4 && parts.every(function (n) { return Number.isInteger(n) && n >= 0; });
    region = ok && parts[2] > 0 && parts[3] > 0 ? parts : null;
    draw();
  }
  function pixel(event) {
    var rect = frame.getBoundingClientRect();
    return [
      Math.round(clamp((event.clientX - rect.left) / rect.width, 0, 1) * width),
      Math.round(clamp((event.clientY - rect.top) / rect.height, 0, 1) * height),
    ];
  }

  var start = null;
  frame.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    event.preventDefault();
    start = pixel(event);
    frame.setPointerCapture(event.pointerId);
  });
  frame.addEventListener("pointermove", function (event) {
    if (!start) return;
    var end = pixel(event);
    var x = Math.min(start[0], end[0]), y = Math.min(start[1], end[1]);
    region = [x, y, Math.max(1, Math.abs(end[0] - start[0])), Math.max(1, Math.abs(end[1] - start[1]))];
    region[2] = Math.min(region[2], width - x);
    region[3] = Math.min(region[3], height - y);
    draw();
    write();
  });
  frame.addEventListener("pointerup", function () {
    start = null;
    if (region) box.focus();
  });

  box.addEventListener("keydown", function (event) {
    var moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    var move = moves[event.key];
    if (!move || !region) return;
    event.preventDefault();
    var step = Math.max(1, Math.round(Math.max(width, height) / 50));
    if (event.shiftKey) {
      region[2] = clamp(region[2] + move[0] * step, 1, width - region[0]);
      region[3] = clamp(region[3] + move[1] * step, 1, height - region[1]);
    } else {
      region[0] = clamp(region[0] + move[0] * step, 0, width - region[2]);
      region[1] = clamp(region[1] + move[1] * step, 0, height - region[3]);
    }
    draw();
    write();
  });
  input.addEventListener("input", read);
  read();
})();
