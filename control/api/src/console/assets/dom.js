// DOM helpers of the console. Every value from the API goes into the page as text (text nodes and
// attribute values), never as HTML: SNI, Host, User-Agent and MDM device names are attacker-controlled.
'use strict';

export const $ = (sel, root = document) => root.querySelector(sel);

/** Builds an element; string and number children become text nodes, never markup. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const loading = new Map();

/** Loads one of the console's own classic scripts (a vendored library) once; resolves when it ran.
 * The CSP allows scripts from this origin only, so `src` must be under /ui/assets/. */
export function loadScript(src, css) {
  if (!loading.has(src)) {
    loading.set(src, new Promise((resolve, reject) => {
      if (css) document.head.append(h('link', { rel: 'stylesheet', href: css }));
      const s = h('script', { src });
      s.addEventListener('load', () => resolve());
      s.addEventListener('error', () => { loading.delete(src); reject(new Error(`could not load ${src}`)); });
      document.head.append(s);
    }));
  }
  return loading.get(src);
}
