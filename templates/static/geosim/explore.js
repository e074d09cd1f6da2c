// Embedding explorer: a dependency-free 3-D scatter on a 2-D canvas.
// Points are rotated and projected in JavaScript, sorted back to front and written straight into an
// ImageData buffer, which draws 30,000 points in a few milliseconds without WebGL.
(function () {
  "use strict";

  // -- waiting for a projection -------------------------------------------------------------------
  function pollStatus(url, onUpdate) {
    function tick() {
      fetch(url, { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (state) { if (onUpdate(state) !== false) setTimeout(tick, 1000); })
        .catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 1000);
  }

  var waiting = document.getElementById("projection-progress");
  if (waiting) {
    var fill = waiting.querySelector(".bar > span");
    var text = document.getElementById("projection-state");
    pollStatus(waiting.dataset.statusUrl, function (state) {
      fill.style.width = Math.round(state.progress * 100) + "%";
      fill.parentNode.setAttribute("aria-valuenow", String(Math.round(state.progress * 100)));
      if (state.ready) { window.location.reload(); return false; }
      if (state.status === "failed") { text.textContent = "Failed: " + state.error; return false; }
      text.textContent = state.status === "running" ? "Running…" : "Waiting for a worker…";
    });
  }
  var stale = document.getElementById("projection-stale");
  if (stale) {
    pollStatus(stale.dataset.statusUrl, function (state) {
      if (!state.ready) return true;
      var note = document.getElementById("projection-stale-state");
      note.innerHTML = '<a href="">It is ready — reload.</a>';
      return false;
    });
  }

  // -- the scatter ----------------------------------------------------------------------------------
  var root = document.getElementById("explorer");
  if (!root) return;
  var canvas = root.querySelector("canvas");
  var ctx = canvas.getContext("2d");
  var tip = root.querySelector(".explorer-tip");
  var tipImage = tip.querySelector("img");
  var tipText = tip.querySelector(".explorer-tip-text");
  var countLine = root.querySelector(".explorer-count");
  var legend = root.querySelector(".legend");
  var FALLBACK = ["#7d6b91", "#3f7f8c", "#9c7a3c", "#6d8b3a", "#8c4f6e", "#4a5a8c"];
  var DEFAULT_VIEW = { yaw: 0.7, pitch: 0.35, zoom: 1 };

  var n = 0, xyz, ids, codes, names, colours, visible, total = 0;
  var sx, sy, depth, order;
  var view = Object.assign({}, DEFAULT_VIEW);
  var hovered = -1, dragging = null, spinning = false, pending = false;

  function cssColour(name) {
    var value = getComputedStyle(document.documentElement).getPropertyValue("--rock-" + name).trim();
    return value || null;
  }
  function rgb(hex) {
    var v = parseInt(hex.replace("#", ""), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  fetch(root.dataset.src, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(start)
    .catch(function (error) { countLine.textContent = "Could not load the projection: " + error.message; });

  function start(data) {
    n = data.count;
    total = data.total;
    ids = data.ids;
    codes = Uint8Array.from(data.label);
    names = data.labels;
    xyz = new Float32Array(data.xyz.length);
    for (var i = 0; i < xyz.length; i++) xyz[i] = data.xyz[i] / 1000;
    var fallback = 0;
    colours = names.map(function (name) {
      return rgb(cssColour(name || "none") || FALLBACK[fallback++ % FALLBACK.length]);
    });
    visible = names.map(function () { return true; });
    sx = new Float32Array(n); sy = new Float32Array(n); depth = new Float32Array(n);
    order = new Uint32Array(n);
    buildLegend();
    bind();
    draw();
  }

  function buildLegend() {
    var counts = names.map(function () { return 0; });
    for (var i = 0; i < n; i++) counts[codes[i]]++;
    names.forEach(function (name, code) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "legend-item";
      button.setAttribute("aria-pressed", "true");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = "rgb(" + colours[code].join(",") + ")";
      button.appendChild(swatch);
      button.appendChild(document.createTextNode(" " + (name || "unlabelled") + " "));
      var count = document.createElement("span");
      count.className = "muted";
      count.textContent = counts[code].toLocaleString();
      button.appendChild(count);
      button.addEventListener("click", function () {
        visible[code] = !visible[code];
        button.setAttribute("aria-pressed", String(visible[code]));
        button.classList.toggle("off", !visible[code]);
        schedule();
      });
      item.appendChild(button);
      legend.appendChild(item);
    });
  }

  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; draw(); if (spinning) { view.yaw += 0.006; schedule(); } });
  }

  function draw() {
    var dpr = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.round(canvas.clientWidth * dpr));
    var height = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
    var cy = Math.cos(view.yaw), syaw = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
    var scale = Math.min(width, height) * 0.3 * view.zoom, camera = 4;
    var midX = width / 2, midY = height / 2, shown = 0;
    for (var i = 0; i < n; i++) {
      var x = xyz[3 * i], y = xyz[3 * i + 1], z = xyz[3 * i + 2];
      var x1 = x * cy + z * syaw, z1 = -x * syaw + z * cy;
      var y2 = y * cp - z1 * sp, z2 = y * sp + z1 * cp;
      var f = camera / (camera - z2);
      sx[i] = midX + x1 * scale * f;
      sy[i] = midY - y2 * scale * f;
      depth[i] = z2;
      if (visible[codes[i]]) order[shown++] = i;
    }
    var drawn = order.subarray(0, shown);
    drawn.sort(function (a, b) { return depth[a] - depth[b]; });

    var image = ctx.createImageData(width, height);
    var pixels = new Uint32Array(image.data.buffer);
    var base = shown < 2000 ? 4 : shown < 10000 ? 3 : 2;
    var size = Math.max(2, Math.round(base * dpr)), half = size >> 1;
    for (var k = 0; k < shown; k++) {
      var p = drawn[k], c = colours[codes[p]];
      var shade = 0.6 + 0.4 * Math.min(1, Math.max(0, (depth[p] + 1) / 2));
      var packed = (255 << 24) | ((c[2] * shade) << 16) | ((c[1] * shade) << 8) | (c[0] * shade);
      var px = Math.round(sx[p]) - half, py = Math.round(sy[p]) - half;
      for (var dy = 0; dy < size; dy++) {
        var row = py + dy;
        if (row < 0 || row >= height) continue;
        for (var dx = 0; dx < size; dx++) {
          var col = px + dx;
          if (col >= 0 && col < width) pixels[row * width + col] = packed;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    drawAxes(cy, syaw, cp, sp, scale, camera, midX, midY, dpr);
    if (hovered >= 0 && visible[codes[hovered]]) {
      ctx.beginPath();
      ctx.arc(sx[hovered], sy[hovered], 6 * dpr, 0, 2 * Math.PI);
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = "#1d232a";
      ctx.stroke();
    }
    root.dataset.points = String(n);
    root.dataset.drawn = String(shown);
    window.geosimExplorer = { points: n, drawn: shown, total: total, yaw: view.yaw, pitch: view.pitch, zoom: view.zoom };
    countLine.textContent = shown.toLocaleString() + " of " + n.toLocaleString() + " points shown" +
      (total > n ? " (a sample of " + total.toLocaleString() + " images)" : "");
  }

  function drawAxes(cy, syaw, cp, sp, scale, camera, midX, midY, dpr) {
    function at(x, y, z) {
      var x1 = x * cy + z * syaw, z1 = -x * syaw + z * cy;
      var y2 = y * cp - z1 * sp, z2 = y * sp + z1 * cp, f = camera / (camera - z2);
      return [midX + x1 * scale * f, midY - y2 * scale * f];
    }
    ctx.lineWidth = dpr;
    ctx.strokeStyle = "rgba(47, 36, 25, 0.25)";
    ctx.font = 11 * dpr + "px system-ui, sans-serif";
    ctx.fillStyle = "rgba(47, 36, 25, 0.55)";
    [[1.1, 0, 0, "1"], [0, 1.1, 0, "2"], [0, 0, 1.1, "3"]].forEach(function (axis) {
      var a = at(-axis[0], -axis[1], -axis[2]), b = at(axis[0], axis[1], axis[2]);
      ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
      ctx.fillText(axis[3], b[0] + 4 * dpr, b[1]);
    });
  }

  function nearest(clientX, clientY) {
    var rect = canvas.getBoundingClientRect(), dpr = canvas.width / rect.width;
    var x = (clientX - rect.left) * dpr, y = (clientY - rect.top) * dpr;
    var best = -1, bestDistance = Math.pow(8 * dpr, 2);
    for (var i = 0; i < n; i++) {
      if (!visible[codes[i]]) continue;
      var d = (sx[i] - x) * (sx[i] - x) + (sy[i] - y) * (sy[i] - y);
      if (d < bestDistance || (d === bestDistance && best >= 0 && depth[i] > depth[best])) { best = i; bestDistance = d; }
    }
    return best;
  }

  function showTip(index, clientX, clientY) {
    if (index < 0) { tip.hidden = true; canvas.style.cursor = "grab"; return; }
    var id = ids[index], name = names[codes[index]] || "unlabelled";
    var src = root.dataset.previewUrl.replace("/0/", "/" + id + "/");
    if (tipImage.getAttribute("src") !== src) tipImage.src = src;
    tipText.textContent = name + " · #" + id;
    var rect = root.getBoundingClientRect();
    tip.style.left = Math.min(clientX - rect.left + 16, rect.width - 150) + "px";
    tip.style.top = Math.max(clientY - rect.top - 70, 4) + "px";
    tip.hidden = false;
    canvas.style.cursor = "pointer";
  }

  function bind() {
    canvas.addEventListener("pointerdown", function (event) {
      dragging = { x: event.clientX, y: event.clientY, moved: false };
      spinning = false;
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (dragging) {
        var dx = event.clientX - dragging.x, dy = event.clientY - dragging.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) dragging.moved = true;
        view.yaw += dx * 0.008;
        view.pitch = Math.max(-1.5, Math.min(1.5, view.pitch + dy * 0.008));
        dragging.x = event.clientX; dragging.y = event.clientY;
        tip.hidden = true;
        schedule();
        return;
      }
      var found = nearest(event.clientX, event.clientY);
      if (found !== hovered) { hovered = found; schedule(); }
      showTip(found, event.clientX, event.clientY);
    });
    canvas.addEventListener("pointerup", function (event) {
      var wasClick = dragging && !dragging.moved;
      dragging = null;
      if (wasClick) {
        var found = nearest(event.clientX, event.clientY);
        if (found >= 0) window.location.href = root.dataset.imageUrl.replace("/0/", "/" + ids[found] + "/");
      }
    });
    canvas.addEventListener("pointerleave", function () { tip.hidden = true; hovered = -1; schedule(); });
    canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      view.zoom = Math.max(0.3, Math.min(12, view.zoom * Math.exp(-event.deltaY * 0.0015)));
      schedule();
    }, { passive: false });
    var spinButton = root.querySelector('[data-action="spin"]');
    function setSpinning(on) {
      spinning = on;
      spinButton.setAttribute("aria-pressed", String(on));
      schedule();
    }
    function resetView() {
      view = Object.assign({}, DEFAULT_VIEW);
      setSpinning(false);
    }
    root.querySelector('[data-action="reset"]').addEventListener("click", resetView);
    spinButton.addEventListener("click", function () { setSpinning(!spinning); });
    // The keyboard does what the mouse does: arrows turn, + and - zoom, 0 resets.
    canvas.addEventListener("keydown", function (event) {
      var step = event.shiftKey ? 0.4 : 0.1;
      var keys = {
        ArrowLeft: function () { view.yaw -= step; },
        ArrowRight: function () { view.yaw += step; },
        ArrowUp: function () { view.pitch = Math.max(-1.5, view.pitch - step); },
        ArrowDown: function () { view.pitch = Math.min(1.5, view.pitch + step); },
        "+": function () { view.zoom = Math.min(12, view.zoom * 1.2); },
        "=": function () { view.zoom = Math.min(12, view.zoom * 1.2); },
        "-": function () { view.zoom = Math.max(0.3, view.zoom / 1.2); },
        "0": resetView,
      };
      var action = keys[event.key];
      if (!action) return;
      event.preventDefault();
      spinning = false;
      spinButton.setAttribute("aria-pressed", "false");
      action();
      schedule();
    });
    window.addEventListener("resize", schedule);
  }
})();
