// Drag and drop plus a plain file input; the upload goes by XMLHttpRequest so the page can show progress.
// Without JavaScript the form posts normally and the server answers with a redirect to the result.
(function () {
  "use strict";
  var form = document.getElementById("hochladen");
  if (!form) { return; }
  var zone = document.getElementById("ablage");
  var input = document.getElementById("datei");
  var progress = document.getElementById("fortschritt");
  var bar = document.getElementById("fortschritt-balken");
  var status = document.getElementById("fortschritt-text");
  var failure = document.getElementById("upload-fehler");
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
  var maxText = form.getAttribute("data-max-text");

  function showError(text) {
    progress.hidden = true;
    failure.textContent = text;  // textContent: never interpreted as HTML
    failure.hidden = false;
    zone.classList.remove("aktiv");
  }

  function send(file) {
    failure.hidden = true;
    if (!/\.xlsx$/i.test(file.name)) {
      showError("Nur Excel-Arbeitsmappen im Format .xlsx werden angenommen: " + file.name);
      return;
    }
    if (file.size > maxBytes) {
      showError("Die Datei ist zu groß (" + (file.size / 1048576).toFixed(1).replace(".", ",") +
                " MB). Erlaubt sind höchstens " + maxText + ".");
      return;
    }
    var data = new FormData();
    data.append("csrf_token", form.elements["csrf_token"].value);
    data.append("arbeitsmappe", file, file.name);
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-Requested-With", "fetch");
    request.responseType = "json";
    request.upload.onprogress = function (event) {
      if (event.lengthComputable) {
        var percent = Math.round(event.loaded / event.total * 100);
        bar.value = percent;
        status.textContent = "Wird hochgeladen … " + percent + " %";
      }
    };
    request.upload.onload = function () {
      bar.removeAttribute("value");  // indeterminate while the server computes
      status.textContent = "Hochgeladen. Die Arbeitsmappe wird geprüft und verteilt …";
    };
    request.onload = function () {
      var answer = request.response || {};
      if (request.status === 200 && answer.redirect) {
        window.location.assign(answer.redirect);
      } else {
        showError(answer.error || ("Hochladen fehlgeschlagen (HTTP " + request.status + ")."));
      }
    };
    request.onerror = function () {
      showError("Die Verbindung zum Server ist abgebrochen. Ist die Datei zu groß (höchstens " + maxText + ")?");
    };
    progress.hidden = false;
    bar.value = 0;
    status.textContent = "Wird hochgeladen …";
    request.send(data);
  }

  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("aktiv");
    });
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("aktiv"); });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("aktiv");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length === 1) {
      send(files[0]);
    } else {
      showError("Bitte genau eine Arbeitsmappe ablegen.");
    }
  });
  input.addEventListener("change", function () {
    if (input.files.length === 1) { send(input.files[0]); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.files.length === 1) { send(input.files[0]); } else { showError("Bitte eine Arbeitsmappe auswählen."); }
  });
}());
