// "Copy" buttons: <button data-copy="ID" data-copied="WORD"> copies the text of the element #ID
// and then says WORD, in the page's language (no inline script, no words of its own)
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  var text = source.textContent.trim();
  function done() {
    var note = button.parentNode.querySelector(".copied");
    if (note) note.hidden = false;
    button.textContent = button.getAttribute("data-copied") || button.textContent;
  }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { select(source); });
  } else {
    select(source);
    try { if (document.execCommand("copy")) done(); } catch (e) { /* selected: Ctrl+C */ }
  }
  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
});
