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
