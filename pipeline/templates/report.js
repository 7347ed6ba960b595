// QC pages: ratings in localStorage, TSV export, dashboard sorting and filters.
// Data from the page goes into the DOM with textContent only (never innerHTML).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("page-data").textContent);
  var PREFIX = data.storage_prefix;
  var RATER_KEY = "resstore-qc:rater";
  var COLUMNS = ["participant_id", "session", "modality", "rating", "rater", "comment", "timestamp"];

  var store = (function () {
    try {
      var probe = PREFIX + "probe";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (err) {
      return null;
    }
  })();
  var memory = {};
  function getItem(key) { return store ? store.getItem(key) : (key in memory ? memory[key] : null); }
  function setItem(key, value) { if (store) { store.setItem(key, value); } else { memory[key] = value; } }
  function keys() {
    var out = [];
    if (store) { for (var i = 0; i < store.length; i++) { out.push(store.key(i)); } }
    else { out = Object.keys(memory); }
    return out.filter(function (k) { return k.indexOf(PREFIX) === 0 && k !== PREFIX + "probe"; }).sort();
  }
  function ratingKey(pid, ses, modality) { return PREFIX + [pid, ses, modality].join("|"); }
  function readRating(pid, ses, modality) {
    var raw = getItem(ratingKey(pid, ses, modality));
    if (!raw) { return null; }
    try { return JSON.parse(raw); } catch (err) { return null; }
  }

  var status = document.getElementById("storage-status");
  if (status) {
    status.textContent = store
      ? "Ratings are saved in this browser as you type (" + (location.protocol === "file:"
        ? "opened as a file: serve the folder with python -m http.server for storage every browser keeps"
        : "origin " + location.origin) + ")."
      : "This browser blocks local storage for this page: ratings last only until the page is closed. "
        + "Export before leaving, or serve the folder with python -m http.server.";
  }

  function clean(value) { return String(value == null ? "" : value).replace(/[\t\r\n]+/g, " ").trim(); }

  function allRatings(filter) {
    var rows = [];
    keys().forEach(function (key) {
      var parts = key.slice(PREFIX.length).split("|");
      if (parts.length !== 3) { return; }
      var value;
      try { value = JSON.parse(getItem(key)); } catch (err) { return; }
      if (!value || !value.rating) { return; }
      var row = {participant_id: parts[0], session: parts[1], modality: parts[2], rating: value.rating,
                 rater: value.rater, comment: value.comment, timestamp: value.timestamp};
      if (!filter || filter(row)) { rows.push(row); }
    });
    return rows;
  }

  function toTSV(rows) {
    var lines = [COLUMNS.join("\t")];
    rows.forEach(function (row) {
      lines.push(COLUMNS.map(function (c) { return clean(row[c]); }).join("\t"));
    });
    return lines.join("\n") + "\n";
  }

  function download(name, text) {
    var blob = new Blob([text], {type: "text/tab-separated-values"});
    var url = URL.createObjectURL(blob);
    var link = document.createElement("a");
    link.href = url;
    link.download = name;
    link.rel = "noopener";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(url); link.remove(); }, 1000);
  }
  window.resstoreQC = {ratings: allRatings, tsv: function () { return toTSV(allRatings()); }};

  function bindExportAll() {
    var button = document.getElementById("export-all");
    if (button) {
      button.addEventListener("click", function () { download("ratings.tsv", toTSV(allRatings())); });
    }
  }

  function stamp() { return new Date().toISOString(); }

  // Ratings exported elsewhere (another browser, file:// vs a server) back into this storage;
  // a rating already here wins when it is newer.
  function importTSV(text) {
    var lines = text.split(/\r?\n/).filter(function (line) { return line.trim() !== ""; });
    if (!lines.length) { return "empty file"; }
    var header = lines[0].split("\t");
    var index = {};
    COLUMNS.forEach(function (c) { index[c] = header.indexOf(c); });
    var missing = COLUMNS.filter(function (c) { return index[c] < 0; });
    if (missing.length) { return "not a ratings TSV: missing column(s) " + missing.join(", "); }
    var added = 0, kept = 0, skipped = 0;
    lines.slice(1).forEach(function (line) {
      var f = line.split("\t");
      var row = {};
      COLUMNS.forEach(function (c) { row[c] = f[index[c]] == null ? "" : f[index[c]]; });
      if (["pass", "fail", "uncertain"].indexOf(row.rating) < 0 || !row.participant_id || !row.session
          || !row.modality) { skipped += 1; return; }
      var current = readRating(row.participant_id, row.session, row.modality);
      if (current && current.rating && (current.timestamp || "") >= row.timestamp) { kept += 1; return; }
      setItem(ratingKey(row.participant_id, row.session, row.modality), JSON.stringify(
        {rating: row.rating, comment: row.comment, rater: row.rater, timestamp: row.timestamp}));
      added += 1;
    });
    return "imported " + added + " rating(s); kept " + kept + " newer one(s) already here; skipped "
      + skipped + " invalid row(s)";
  }

  // ---------------------------------------------------------------- session page
  function sessionPage() {
    var pid = data.participant_id, ses = data.session;
    var rater = document.getElementById("rater");
    rater.value = getItem(RATER_KEY) || "";
    rater.addEventListener("input", function () { setItem(RATER_KEY, rater.value); });

    Array.prototype.forEach.call(document.querySelectorAll("form.rating-form"), function (form) {
      var modality = form.getAttribute("data-modality");
      var comment = form.querySelector("textarea[name=comment]");
      var saved = form.querySelector(".saved");
      var current = readRating(pid, ses, modality);
      if (current) {
        Array.prototype.forEach.call(form.querySelectorAll("input[type=radio]"), function (radio) {
          radio.checked = radio.value === current.rating;
        });
        comment.value = current.comment || "";
        saved.textContent = current.rating ? "saved " + current.timestamp + " by " + (current.rater || "?") : "";
      }
      function save() {
        var checked = form.querySelector("input[type=radio]:checked");
        var value = {rating: checked ? checked.value : "", comment: comment.value, rater: rater.value,
                     timestamp: stamp()};
        setItem(ratingKey(pid, ses, modality), JSON.stringify(value));
        saved.textContent = value.rating ? "saved " + value.timestamp + " by " + (value.rater || "?")
          : "comment kept; choose pass, fail or uncertain to rate";
      }
      form.addEventListener("change", save);
      comment.addEventListener("input", save);
      form.addEventListener("submit", function (event) { event.preventDefault(); save(); });
    });

    document.getElementById("export-page").addEventListener("click", function () {
      var rows = allRatings(function (row) { return row.participant_id === pid && row.session === ses; });
      download("ratings_" + pid + "_ses-" + ses + ".tsv", toTSV(rows));
    });
    bindExportAll();
  }

  // ---------------------------------------------------------------- dashboard
  function dashboard() {
    var table = document.getElementById("sessions");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var progress = document.getElementById("progress");
    var progressText = document.getElementById("progress-text");

    function refreshRatings() {
      var expected = 0, done = 0, complete = 0;
      rows.forEach(function (tr) {
        var pid = tr.getAttribute("data-participant"), ses = tr.getAttribute("data-session");
        var mods = (tr.getAttribute("data-modalities") || "").split(",").filter(Boolean);
        var rowDone = 0;
        Array.prototype.forEach.call(tr.querySelectorAll("td.rating-cell"), function (td) {
          var modality = td.getAttribute("data-modality");
          var span = td.querySelector(".browser-rating");
          if (!span) { return; }
          var value = readRating(pid, ses, modality);
          var rating = value && value.rating ? value.rating : "";
          span.textContent = rating || "–";
          span.className = "browser-rating" + (rating ? " rating-" + rating : "");
          td.setAttribute("data-sort", rating);
          if (value && value.comment) { td.title = value.comment; }
        });
        mods.forEach(function (m) {
          expected += 1;
          var value = readRating(pid, ses, m);
          if (value && value.rating) { done += 1; rowDone += 1; }
        });
        tr.setAttribute("data-complete", rowDone === mods.length ? "1" : "0");
        if (rowDone === mods.length) { complete += 1; }
      });
      progress.max = Math.max(expected, 1);
      progress.value = done;
      progressText.textContent = done + " of " + expected + " modality ratings (" + complete + " of "
        + rows.length + " sessions complete)";
    }

    function applyFilters() {
      var text = document.getElementById("filter").value.trim().toLowerCase();
      var outliers = document.getElementById("outliers-only").checked;
      var unrated = document.getElementById("unrated-only").checked;
      rows.forEach(function (tr) {
        var label = (tr.getAttribute("data-participant") + " " + tr.getAttribute("data-session")).toLowerCase();
        var show = (!text || label.indexOf(text) !== -1)
          && (!outliers || Number(tr.getAttribute("data-outliers")) > 0)
          && (!unrated || tr.getAttribute("data-complete") !== "1");
        tr.classList.toggle("hidden", !show);
      });
    }

    function cellKey(tr, index, numeric) {
      var cell = tr.cells[index];
      var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
      if (!numeric) { return raw.toLowerCase(); }
      return raw === "" ? NaN : Number(raw);
    }

    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "number";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
          other.setAttribute("aria-sort", "none");
        });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        rows.sort(function (a, b) {
          var x = cellKey(a, index, numeric), y = cellKey(b, index, numeric);
          if (numeric) {
            if (isNaN(x) && isNaN(y)) { return 0; }
            if (isNaN(x)) { return 1; }      // missing values last in both directions
            if (isNaN(y)) { return -1; }
            return ascending ? x - y : y - x;
          }
          return ascending ? x.localeCompare(y) : y.localeCompare(x);
        });
        rows.forEach(function (tr) { body.appendChild(tr); });
      });
    });

    ["filter", "outliers-only", "unrated-only"].forEach(function (id) {
      document.getElementById(id).addEventListener("input", applyFilters);
      document.getElementById(id).addEventListener("change", applyFilters);
    });
    Array.prototype.forEach.call(document.querySelectorAll("input.toggle-modality"), function (box) {
      box.addEventListener("change", function () {
        Array.prototype.forEach.call(table.querySelectorAll(".mod-" + box.value), function (cell) {
          cell.classList.toggle("hidden", !box.checked);
        });
      });
    });
    var importer = document.getElementById("import");
    importer.addEventListener("change", function () {
      var file = importer.files[0];
      if (!file) { return; }
      file.text().then(function (text) {
        var result = importTSV(text);
        document.getElementById("import-status").textContent = result;
        importer.value = "";
        refreshRatings();
        applyFilters();
      });
    });
    window.addEventListener("storage", function () { refreshRatings(); applyFilters(); });
    window.addEventListener("pageshow", function () { refreshRatings(); applyFilters(); });
    refreshRatings();
    bindExportAll();
  }

  if (data.page === "session") { sessionPage(); } else { dashboard(); }
})();
