"""The panel's one stylesheet, served from /panel/static/panel.css (the page's policy allows
styles only from there: no inline style). Small screens first: tables scroll sideways inside
their box, forms stack."""

STYLESHEET = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --line: #d6dae3;
  --bg: #ffffff; --panel: #f4f6fa; --accent: #3656d6; --ok: #1f7a3b; --bad: #b3261e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ee; --muted: #a2a9b8; --line: #3a4150;
  --bg: #161a22; --panel: #1f2430; --accent: #8ea2ff; --ok: #6fcf8e; --bad: #ff8a80; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { background: var(--panel); border-bottom: 1px solid var(--line); padding: .5rem 1rem; }
nav { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center; }
nav a { color: var(--accent); text-decoration: none; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
h3 { font-size: 1rem; margin: 0 0 .5rem; }
a { color: var(--accent); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem;
  border-bottom: 1px solid var(--line); overflow-wrap: break-word; word-break: normal; }
th { color: var(--muted); font-weight: 600; white-space: nowrap; }
table.facts td:first-child { color: var(--muted); width: 12rem; }
.flash { padding: .5rem .75rem; border-radius: 6px; border: 1px solid var(--line); }
.flash.ok { border-color: var(--ok); color: var(--ok); }
.flash.problem { border-color: var(--bad); color: var(--bad); }
.note, .hint { color: var(--muted); }
small.problem { color: var(--bad); }
.state.sent { color: var(--ok); } .state.failed, .state.parked { color: var(--bad); }
form.inline { display: inline; margin: 0; }
button, .button { font: inherit; padding: .3rem .8rem; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--accent); background: var(--accent); color: var(--bg);
  text-decoration: none; display: inline-block; white-space: nowrap; }
form.inline button { padding: .1rem .6rem; background: transparent; color: var(--accent); }
input, select { font: inherit; padding: .3rem .4rem; border: 1px solid var(--line);
  border-radius: 4px; background: var(--bg); color: var(--fg); max-width: 100%; }
form.subscription { display: grid; gap: .6rem; max-width: 40rem; }
.field { display: grid; gap: .15rem; }
.field label { font-weight: 600; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end;
  margin-bottom: 1rem; }
form.login { display: grid; gap: .8rem; max-width: 22rem; }
form.login label { display: grid; gap: .2rem; }
.columns { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: .8rem; overflow-wrap: anywhere; }
svg.histogram { width: 100%; max-width: 32rem; height: auto; }
svg.histogram .bar { fill: var(--accent); }
svg.histogram .axis { fill: var(--muted); font-size: 9px; }
.preview { white-space: pre-wrap; font-size: .92rem; }
.d-embed { border-left: 4px solid var(--accent); padding: .4rem .7rem; background: var(--bg);
  border-radius: 4px; }
.d-author, .d-footer, .s-context { color: var(--muted); font-size: .85rem; }
.d-title { font-weight: 700; margin: .2rem 0; }
.d-field-name { font-weight: 600; margin-top: .4rem; }
.s-section { margin: .3rem 0; }
.d-image, .s-image { color: var(--muted); font-size: .8rem; }
"""
