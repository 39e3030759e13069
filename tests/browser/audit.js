// Accessibility basics of what is on screen now: every visible form control has a label, every
// button and link a name, every image (SVG chart, bar) a text alternative, and every visible text
// the WCAG AA contrast with its background (4.5:1, or 3:1 for large text). Returns the problems.
() => {
  const problems = [];
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden" && style.display !== "none";
  };
  const describe = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${(el.textContent || "").trim().slice(0, 30)}"`;
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (!visible(el)) continue;
    const labelled = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!labelled) problems.push(`no label: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!visible(el)) continue;
    if (!(el.getAttribute("aria-label") || el.textContent || "").trim()) problems.push(`no name: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("svg, [role=img]")) {
    if (!visible(el)) continue;
    if (!(el.getAttribute("aria-label") || "").trim()) problems.push(`image without a text alternative: ${describe(el)}`);
  }
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const channel = (value) => {
    const v = value / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const colour = rgb(getComputedStyle(node).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] === 1)) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const checked = new Set();
  let count = 0;
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !el || checked.has(el) || !visible(el)) continue;
    if (el.closest("title, [aria-hidden=true]") && !el.closest(".bar")) continue;
    checked.add(el);
    const style = getComputedStyle(el);
    const foreground = rgb(el instanceof SVGElement ? style.fill : style.color).slice(0, 3);
    const back = background(el instanceof SVGElement ? el.closest("figure") || el : el);
    const [light, dark] = [luminance(foreground), luminance(back)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    count += 1;
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${describe(el)}`);
  }
  return { problems, texts: count };
}
