/* The admin pages' only script (templates/admin/box.html): the box look's live preview.
   As the form changes, the preview frame loads the box's page with the look asked for
   (/admin/box/preview?color=&position=&title=&welcome=); nothing is saved until Save. */
(function () {
  'use strict';
  var form = document.getElementById('look-form');
  var frame = document.getElementById('look-preview');
  if (!form || !frame) { return; }
  var timer = null;
  function refresh() {
    var query = new URLSearchParams();
    ['color', 'position', 'title', 'welcome'].forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field) { query.set(name, field.value); }
    });
    var src = form.getAttribute('data-preview') + '?' + query.toString();
    if (frame.getAttribute('src') !== src) { frame.setAttribute('src', src); }
  }
  function soon() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, 250);
  }
  form.addEventListener('input', soon);
  form.addEventListener('change', soon);
})();
