"""The page's styles and its script: static text handed to Gradio (`css`, `head`) and the small
scripts of its buttons. Nothing here runs on the server."""

CSS = """
.layer-bar { display: flex; height: 2.2em; border-radius: 6px; overflow: hidden; margin: .4em 0; }
.layer-bar > span { display: flex; align-items: center; justify-content: center; font-weight: 600;
  font-size: .85em; white-space: nowrap; overflow: hidden; }
.layer-prompt { background: #0072B2; color: #fff; }
.layer-retrieval { background: #E69F00; color: #000; }
.layer-model { background: #6E6E6E; color: #fff; }
.legend { display: flex; gap: 1em; flex-wrap: wrap; font-size: .9em; padding: 0; list-style: none; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px; margin-right: .3em;
  vertical-align: -.1em; }
.why .verdict { font-size: 1.1em; font-weight: 600; margin: .3em 0; }
.why .explains { margin: 0 0 .4em; font-style: italic; }
.why .sentence { border-left: 5px solid #6E6E6E; padding: .2em .6em; margin: .3em 0; list-style: none; }
.why .sentence.guided { border-left-color: #E69F00; }
.why .sentence.prompted { border-left-color: #0072B2; }
.why .tag { font-size: .8em; font-weight: 600; border-radius: 4px; padding: 0 .4em; margin-left: .4em;
  border: 1px solid currentColor; }
.why .passage { border: 1px solid #ccc; border-radius: 6px; padding: .4em .6em; margin: .4em 0; }
.why .passage.related { opacity: .8; border-style: dashed; }
.why .warnings { border: 2px solid #B00020; border-radius: 6px; padding: .4em .6em .4em 1.6em; font-weight: 600; }
.why mark.planted { background: #FDE7E9; color: #B00020; text-decoration: line-through; }
.why .passage.flash { outline: 3px solid #E69F00; }
.why .prompt-part { white-space: pre-wrap; border-left: 5px solid; padding: .2em .6em; margin: .2em 0;
  font-family: ui-monospace, monospace; font-size: .85em; }
.why .part-system { border-color: #0072B2; } .why .part-passages { border-color: #E69F00; }
.why .part-history { border-color: #999; } .why .part-question { border-color: #009E73; }
.why details { margin: .5em 0; } .why summary { cursor: pointer; font-weight: 600; }
.why .figures td, .why .figures th { padding: .1em .5em; text-align: left; vertical-align: top; }
.why .cut { color: #6E6E6E; font-style: italic; }
.notice { color: #B00020; font-weight: 600; }
#chat .explained { outline: 3px solid #E69F00; outline-offset: 2px; }
.embed-sources summary { cursor: pointer; }
.embed-sources details { margin: .2em 0 .2em 1em; }
footer { display: none !important; }
"""

# Rules that depend on a class the page's script sets on <html>, and the narrow-screen layouts: in
# HEAD, as written (Gradio prefixes the rules of `css` with its container, which no <html> rule
# survives, and the prefixed rules would outweigh these).
PAGE_CSS = """
.why-back, .why-open { display: none; }
#compare-row[data-shown="1"] > :nth-child(n+2), #compare-row[data-shown="2"] > :nth-child(n+3),
#compare-row[data-shown="3"] > :nth-child(n+4) { visibility: hidden; }
html.tutor-presenter .gradio-container { max-width: none !important; width: 100% !important;
  padding: 0 1em !important; }
html.tutor-presenter .gradio-container, html.tutor-presenter .gradio-container * { font-size: 24px !important;
  line-height: 1.35 !important; }
html.tutor-presenter .gradio-container h1, html.tutor-presenter .gradio-container h1 * { font-size: 40px !important; }
html.tutor-presenter .gradio-container h3 { font-size: 30px !important; }
html.tutor-presenter .layer-bar { height: 1.8em; }
@media (max-width: 700px) {
  #why-column { position: fixed; inset: 0; z-index: 1000; margin: 0; padding: .8em; overflow-y: auto;
    background: var(--background-fill-primary, #fff); transform: translateX(105%); transition: transform .2s; }
  html.tutor-drawer #why-column { transform: none; }
  html.tutor-drawer body { overflow: hidden; }
  .why-back { display: inline-block; position: sticky; top: 0; z-index: 1; font-size: 1.05em; padding: .5em .9em;
    border-radius: 6px; border: 1px solid #999; background: var(--background-fill-primary, #fff); }
  .why-open { display: inline-block; font-size: 1em; padding: .4em .8em; border-radius: 6px; border: 1px solid #999; }
  #compare-row { flex-direction: column !important; }
  #compare-row > * { min-width: 100% !important; }
}
@media (max-width: 480px) {
  #ask-row { flex-direction: column !important; }
  #ask-row > * { min-width: 100% !important; width: 100% !important; }
}
"""

# Citations link to their passage in the panel: one click shows the passage, highlighted, even when
# the panel first has to switch to that answer (the chat's select event does that on the server),
# and on a narrow screen the panel opens as a drawer with a way back. Copying an answer gives plain
# text: [1] instead of the citation's Markdown link.
HEAD = (
    "<style>"
    + PAGE_CSS
    + """</style>
<script>
(() => {
  let pending = null;
  const highlight = (id) => {
    const target = document.getElementById(id);
    if (!target) return false;
    for (let d = target.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true;
    if (target.closest('#why-column') && window.matchMedia('(max-width: 700px)').matches) {
      document.documentElement.classList.add('tutor-drawer');
    }
    target.scrollIntoView({behavior: 'smooth', block: 'center'});
    target.classList.add('flash');
    setTimeout(() => target.classList.remove('flash'), 2500);
    return true;
  };
  document.addEventListener('click', (event) => {
    if (event.target.closest('.why-back')) {
      document.documentElement.classList.remove('tutor-drawer');
      const marked = document.querySelector('#chat .explained');
      if (marked) marked.scrollIntoView({block: 'center'});
      return;
    }
    if (event.target.closest('.why-open')) { document.documentElement.classList.add('tutor-drawer'); return; }
    const link = event.target.closest('a[href^="#passage-"]');
    if (!link) return;
    event.preventDefault();
    const id = link.getAttribute('href').slice(1);
    if (highlight(id)) return;
    pending = {id, until: Date.now() + 15000};  // the panel is switching to that answer
  }, true);
  const plain = (text) => text.replace(/\\[\\[(\\d+)\\]\\]\\(#passage-[\\w-]+\\)/g, '[$1]')
    .replace(/\\*\\((⚠ not in the guides)\\)\\*/g, '($1)');
  if (navigator.clipboard && navigator.clipboard.writeText) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (text) => write(plain(String(text)));
  }
  document.addEventListener('copy', (event) => {
    const selection = document.getSelection();
    if (!selection || selection.isCollapsed || !selection.anchorNode) return;
    const anchor = selection.anchorNode;
    const node = anchor.nodeType === 1 ? anchor : anchor.parentElement;
    if (!node || !node.closest('#chat')) return;
    event.clipboardData.setData('text/plain', plain(selection.toString()));
    event.preventDefault();
  });
  // On a narrow screen, a sent question brings the chat to the top: the answer, box and Ask in view.
  const toChat = () => {
    if (!window.matchMedia('(max-width: 700px)').matches) return;
    setTimeout(() => {
      const chat = document.getElementById('chat');
      if (chat) chat.scrollIntoView({block: 'start'});
    }, 150);
  };
  document.addEventListener('click', (event) => { if (event.target.closest('#ask')) toChat(); });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && event.target.closest && event.target.closest('#question')) toChat();
  });
  const sync = () => {
    if (pending) {
      if (Date.now() > pending.until) pending = null;
      else if (highlight(pending.id)) pending = null;
    }
    const shown = document.querySelector('#why .why[data-turn]');
    const turn = shown ? Number(shown.dataset.turn) : 0;
    const bots = document.querySelectorAll('#chat .message.bot');
    bots.forEach((bot, i) => bot.classList.toggle('explained', i + 1 === turn));
  };
  new MutationObserver(() => { clearTimeout(window.tutorSync); window.tutorSync = setTimeout(sync, 50); })
    .observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
"""
)

PRESENTER_JS = "(on) => { document.documentElement.classList.toggle('tutor-presenter', on); return on; }"
# The compare view's step control, in the browser alone: the four answers stream as before, and the
# columns not yet revealed are kept in place but hidden.
NEXT_LAYER_JS = """() => {
  const row = document.getElementById('compare-row');
  const shown = Math.min(Number(row.dataset.shown || 0) + 1, 4);
  row.dataset.shown = String(shown);
  return [];
}"""
RESET_JS = """() => { document.getElementById('compare-row').dataset.shown = '0'; return []; }"""
