// Lesion review page: NiiVue viewers of one session (FLAIR, T1w) sharing one editable mask.
// The mask the page starts from, every stroke (paint / erase), undo and redo live in
// `state`; both viewers show it. Save writes the mask on the full T1w grid (the T1w's
// header, uint8 0/1, gzipped) and its JSON sidecar (rater, time, starting mask, counts).
// Data from the page goes into the DOM with textContent only (never innerHTML).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("page-data").textContent);
  if (data.unavailable) { return; }
  var NV = window.niivue;
  var api = {ready: false, error: null, viewers: [], state: null};
  window.resstoreReview = api;

  function $(id) { return document.getElementById(id); }
  function setText(id, text) { var el = $(id); if (el) { el.textContent = text; } }
  function fail(message) {
    api.error = message;
    var status = $("save-status");
    status.textContent = message;
    status.className = "error";
    status.setAttribute("role", "alert");
  }

  function fromBase64(text) {
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  // ------------------------------------------------------------------ rater name
  var RATER_KEY = data.rater_key;
  var store = null;
  try { window.localStorage.setItem(RATER_KEY + ":probe", "1"); window.localStorage.removeItem(RATER_KEY + ":probe"); store = window.localStorage; }
  catch (err) { store = null; }
  var rater = $("rater");
  rater.value = (store && store.getItem(RATER_KEY)) || "";
  rater.addEventListener("input", function () {
    rater.classList.remove("missing");
    if (store) { store.setItem(RATER_KEY, rater.value); }
  });

  // ------------------------------------------------------------------ mask state
  var state = {start: null, current: null, undo: [], redo: [], saved: true, tool: "paint", pen: 1,
               drawOpacity: 0.3};
  api.state = state;

  function count(bitmap) {
    var n = 0;
    for (var i = 0; i < bitmap.length; i++) { if (bitmap[i]) { n += 1; } }
    return n;
  }

  function changes() {
    var painted = 0, erased = 0, s = state.start, c = state.current;
    for (var i = 0; i < c.length; i++) {
      if (c[i] && !s[i]) { painted += 1; } else if (!c[i] && s[i]) { erased += 1; }
    }
    return {voxels: count(c), painted: painted, erased: erased};
  }
  api.counts = changes;

  function showCounts() {
    var n = changes();
    setText("voxels", String(n.voxels));
    setText("volume-ml", (n.voxels * data.voxel_ml).toFixed(2));
    setText("painted", "+" + n.painted);
    setText("erased", "\u2212" + n.erased);
    $("undo").disabled = state.undo.length === 0;
    $("redo").disabled = state.redo.length === 0;
  }

  function showEverywhere() {
    api.viewers.forEach(function (v) {
      v.nv.drawBitmap.set(state.current);
      v.nv.refreshDrawing(true);
    });
    showCounts();
  }

  // A stroke ended in viewer `source`: record what changed (for undo) and show it in the others.
  function commit(source) {
    var bitmap = source.nv.drawBitmap, cur = state.current, idx = [], old = [];
    for (var i = 0; i < cur.length; i++) {
      var value = bitmap[i] ? 1 : 0;
      if (value !== cur[i]) { idx.push(i); old.push(cur[i]); cur[i] = value; }
    }
    if (idx.length) {
      state.undo.push({idx: idx, old: old});
      state.redo = [];
      state.saved = false;
    }
    showEverywhere();
  }
  api.commit = function (index) { commit(api.viewers[index || 0]); };

  function step(from, to) {
    var edit = from.pop();
    if (!edit) { return; }
    var back = [];
    for (var k = 0; k < edit.idx.length; k++) {
      back.push(state.current[edit.idx[k]]);
      state.current[edit.idx[k]] = edit.old[k];
    }
    to.push({idx: edit.idx, old: back});
    state.saved = false;
    showEverywhere();
  }
  function undo() { step(state.undo, state.redo); }
  function redo() { step(state.redo, state.undo); }

  function reset() {
    var idx = [], old = [];
    for (var i = 0; i < state.current.length; i++) {
      if (state.current[i] !== state.start[i]) { idx.push(i); old.push(state.current[i]); state.current[i] = state.start[i]; }
    }
    if (idx.length) { state.undo.push({idx: idx, old: old}); state.redo = []; state.saved = false; }
    showEverywhere();
  }

  // ------------------------------------------------------------------ tools and views
  function setTool(tool) {
    state.tool = tool;
    Array.prototype.forEach.call(document.querySelectorAll("button.tool"), function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-tool") === tool));
    });
    api.viewers.forEach(function (v) {
      v.nv.setDrawingEnabled(tool !== "navigate");
      v.nv.setPenValue(tool === "erase" ? 0 : 1, false);
      v.nv.opts.penSize = state.pen;
    });
  }

  function setView(type) {
    Array.prototype.forEach.call(document.querySelectorAll("button.view"), function (b) {
      b.setAttribute("aria-pressed", String(Number(b.getAttribute("data-view")) === type));
    });
    api.viewers.forEach(function (v) { v.nv.setSliceType(type); });
  }

  function indexOf(vox) {  // voxel of the page's (cropped) grid -> index in the mask bitmap
    var c = data.crop_shape, v = Array.prototype.map.call(vox, Math.round);
    return v[0] + c[0] * (v[1] + c[1] * v[2]);
  }

  function layer(viewer, key) {
    for (var i = 0; i < viewer.keys.length; i++) { if (viewer.keys[i] === key) { return i; } }
    return -1;
  }

  function toggle(key, on) {
    api.viewers.forEach(function (v) {
      var index = layer(v, key);
      if (index >= 0) { v.nv.setOpacity(index, on ? 1 : 0); }
    });
    if (key === "colourfa") { setText("caption-t1w", on ? "colour FA (red L-R, green A-P, blue S-I) over the T1w" : "T1w"); }
  }

  // ------------------------------------------------------------------ save
  function sha256(bytes) {
    if (!window.crypto || !window.crypto.subtle) { return Promise.resolve(null); }
    return window.crypto.subtle.digest("SHA-256", bytes).then(function (buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    });
  }

  function fullGrid() {
    var nx = data.full_shape[0], ny = data.full_shape[1], nz = data.full_shape[2];
    var cx = data.crop_shape[0], cy = data.crop_shape[1], cz = data.crop_shape[2];
    var sx = data.crop_start[0], sy = data.crop_start[1], sz = data.crop_start[2];
    var full = new Uint8Array(nx * ny * nz);
    for (var z = 0; z < cz; z++) {
      for (var y = 0; y < cy; y++) {
        var from = (z * cy + y) * cx;
        full.set(state.current.subarray(from, from + cx), sx + (y + sy) * nx + (z + sz) * nx * ny);
      }
    }
    return full;
  }

  var links = [];
  function offer(name, blob) {
    var url = URL.createObjectURL(blob);
    links.push(url);
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.rel = "noopener";
    a.textContent = name;
    $("save-links").appendChild(a);
    a.click();
  }

  function save() {
    var name = rater.value.trim();
    if (!name) {
      rater.classList.add("missing");
      rater.focus();
      fail("Type your name (rater) before saving: the pipeline refuses a reviewed mask without one.");
      return Promise.resolve(null);
    }
    var full = fullGrid();
    var n = changes();
    return sha256(full).then(function (digest) {
      var header = fromBase64(data.mask_header_b64);
      var nifti = new Uint8Array(header.length + full.length);
      nifti.set(header, 0);
      nifti.set(full, header.length);
      var sidecar = {
        Description: "Lesion mask reviewed in the resstore QC viewer: uint8 0/1 on the session's "
          + "canonical T1w grid (header of the desc-preproc T1w).",
        Rater: name,
        Timestamp: new Date().toISOString(),
        StartedFrom: data.started_from,
        VoxelsPainted: n.painted,
        VoxelsErased: n.erased,
        Voxels: n.voxels,
        VolumeML: Math.round(n.voxels * data.voxel_ml * 1e6) / 1e6,
        Sources: [data.started_from.File],
        Software: {"resstore-pipeline": data.software["resstore-pipeline"], NiiVue: NV.version,
                   Browser: navigator.userAgent}
      };
      if (digest) { sidecar.VoxelSHA256 = digest; }
      links.forEach(function (url) { URL.revokeObjectURL(url); });
      links = [];
      $("save-links").textContent = "";
      offer(data.save_names.mask, new Blob([NV.gzipSync(nifti, {level: 6, mtime: 0})], {type: "application/gzip"}));
      offer(data.save_names.sidecar, new Blob([JSON.stringify(sidecar, null, 2) + "\n"], {type: "application/json"}));
      state.saved = true;
      var status = $("save-status");
      status.className = "";
      status.removeAttribute("role");
      status.textContent = "Saved " + sidecar.Timestamp + " by " + name + " (" + n.voxels + " voxels). Files:";
      return sidecar;
    });
  }
  api.save = save;

  // ------------------------------------------------------------------ viewers
  function loadVolume(spec) {
    var opts = {base64: spec.b64, name: spec.key + ".nii.gz", colormap: "gray", opacity: 1};
    if (spec.key === "t1w" || spec.key === "flair") { opts.cal_min = 0; opts.cal_max = 255; }
    if (spec.key === "zmap") {
      opts.colormap = "warm"; opts.colormapNegative = "winter"; opts.opacity = 0;
      opts.cal_min = spec.threshold; opts.cal_max = spec.max;
    }
    if (spec.key === "colourfa") { opts.opacity = 0; }
    return NV.NVImage.loadFromBase64(opts);
  }

  function makeViewer(canvasId, keys) {
    var canvas = $(canvasId);
    if (!canvas) { return Promise.resolve(null); }
    var nv = new NV.Niivue({
      backColor: [0, 0, 0, 1], crosshairColor: [0.2, 0.8, 1, 0.6], crosshairWidth: 0.25,
      show3Dcrosshair: false,
      isColorbar: false, dragAndDropEnabled: false, logLevel: "error", penSize: 1,
      maxDrawUndoBitmaps: 2, multiplanarShowRender: 0, isOrientationTextVisible: true,
      sliceType: 0, textHeight: 0.04
    });
    var viewer = {nv: nv, keys: keys, canvas: canvas};
    return nv.attachToCanvas(canvas).then(function () {
      var specs = data.volumes.filter(function (v) { return keys.indexOf(v.key) >= 0; });
      specs.sort(function (a, b) { return keys.indexOf(a.key) - keys.indexOf(b.key); });
      viewer.keys = specs.map(function (v) { return v.key; });
      return Promise.all(specs.map(loadVolume));
    }).then(function (images) {
      images.forEach(function (img) { nv.addVolume(img); });
      var perm = nv.volumes[0].permRAS;
      if (perm && (perm[0] !== 1 || perm[1] !== 2 || perm[2] !== 3)) {
        throw new Error("the page's images are not on a canonical (closest RAS) grid");
      }
      return NV.NVImage.loadFromBase64({base64: data.mask_b64, name: "mask.nii.gz"});
    }).then(function (mask) {
      if (!nv.loadDrawing(mask)) { throw new Error("the lesion mask is not on the T1w grid"); }
      nv.setDrawColormap("$itksnap");  // 1 = red
      nv.drawRimOpacity = 1.0;
      nv.setDrawOpacity(state.drawOpacity);
      nv.onDrawingChanged = function (action) { if (action === "draw") { commit(viewer); } };
      nv.onLocationChange = function (where) {
        if (!where || !where.vox || !where.mm) { return; }
        var voxel = Array.prototype.map.call(where.vox, function (v, i) { return Math.round(v) + data.crop_start[i]; });
        var mm = Array.prototype.map.call(where.mm, function (v) { return Number(v).toFixed(1); });
        setText("location", "Cross-hair: T1w voxel (" + voxel.join(", ") + "), world (" + mm.slice(0, 3).join(", ")
          + ") mm; in the mask: " + (state.current && state.current[nv.back ? indexOf(where.vox) : -1] ? "yes" : "no"));
      };
      return viewer;
    });
  }

  function start() {
    if (!NV || !document.createElement("canvas").getContext("webgl2")) {
      fail("This browser has no WebGL2: the viewer cannot start (use a current Chrome, Edge, Firefox or Safari).");
      return;
    }
    var panels = [["canvas-flair", ["flair"]], ["canvas-t1w", ["t1w", "colourfa", "zmap"]]];
    Promise.all(panels.map(function (p) { return makeViewer(p[0], p[1]); })).then(function (list) {
      api.viewers = list.filter(Boolean);
      state.start = new Uint8Array(api.viewers[0].nv.drawBitmap.length);
      api.viewers[0].nv.drawBitmap.forEach(function (v, i) { state.start[i] = v ? 1 : 0; });
      state.current = new Uint8Array(state.start);
      var others = function (v) { return api.viewers.filter(function (o) { return o !== v; }).map(function (o) { return o.nv; }); };
      api.viewers.forEach(function (v) {
        if (api.viewers.length > 1) { v.nv.broadcastTo(others(v), {"2d": true, "3d": true}); }
        v.nv.scene.crosshairPos = v.nv.vox2frac(data.focus_voxel);
        v.nv.drawScene();
      });
      setTool("paint");
      showEverywhere();
      api.ready = true;
      document.body.setAttribute("data-ready", "1");
    }).catch(function (err) {
      fail("The viewer could not start: " + (err && err.message ? err.message : err));
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("button.tool"), function (b) {
    b.addEventListener("click", function () { setTool(b.getAttribute("data-tool")); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("button.view"), function (b) {
    b.addEventListener("click", function () { setView(Number(b.getAttribute("data-view"))); });
  });
  $("pen-size").addEventListener("change", function () { state.pen = Number($("pen-size").value); setTool(state.tool); });
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("reset").addEventListener("click", reset);
  $("save").addEventListener("click", function () { save(); });
  $("show-mask").addEventListener("change", function () {
    var on = $("show-mask").checked;
    api.viewers.forEach(function (v) { v.nv.setDrawOpacity(on ? state.drawOpacity : 0); });
  });
  ["zmap", "colourfa"].forEach(function (key) {
    var box = $("show-" + key);
    if (box) { box.addEventListener("change", function () { toggle(key, box.checked); }); }
  });
  document.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.target === rater) { return; }
    var key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) { event.preventDefault(); undo(); }
    else if (key === "y" || (key === "z" && event.shiftKey)) { event.preventDefault(); redo(); }
  });
  window.addEventListener("beforeunload", function (event) {
    if (!state.saved) { event.preventDefault(); event.returnValue = ""; }
  });
  start();
})();
