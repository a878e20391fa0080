// Drawings over the frame: an SVG overlay that shows feedback annotations and, with a tool
// picked, records a new one (arrow, rectangle, freehand). Points are 0..1 of the frame, as the
// API stores them; the overlay redraws in pixels so strokes and arrowheads keep their shape.
import { svg } from "./ui.js";

export const COLOR = "#ff3b30";
const MAX_FREEHAND = 1000;

function arrowHead(x1, y1, x2, y2, size) {
  const angle = Math.atan2(y2 - y1, x2 - x1);
  const a = angle + Math.PI - 0.45;
  const b = angle + Math.PI + 0.45;
  return `${x2},${y2} ${x2 + size * Math.cos(a)},${y2 + size * Math.sin(a)} ${x2 + size * Math.cos(b)},${y2 + size * Math.sin(b)}`;
}

export function shapeElements(shape, width, height) {
  const color = /^#[0-9a-fA-F]{6}$/.test(shape.color || "") ? shape.color : COLOR;
  const stroke = Math.max(2, ((shape.stroke_width || 4) / 1000) * width);
  const pts = (shape.points || []).map(([x, y]) => [x * width, y * height]);
  const common = { stroke: color, "stroke-width": stroke, fill: "none", "stroke-linecap": "round", "stroke-linejoin": "round" };
  switch (shape.type) {
    case "arrow": {
      if (pts.length < 2) return [];
      const [[x1, y1], [x2, y2]] = pts;
      return [
        svg("line", { ...common, x1, y1, x2, y2, class: "shape-arrow" }),
        svg("polygon", { points: arrowHead(x1, y1, x2, y2, stroke * 4), fill: color }),
      ];
    }
    case "line": {
      if (pts.length < 2) return [];
      const [[x1, y1], [x2, y2]] = pts;
      return [svg("line", { ...common, x1, y1, x2, y2 })];
    }
    case "rect":
    case "ellipse": {
      if (pts.length < 2) return [];
      const [[x1, y1], [x2, y2]] = pts;
      const x = Math.min(x1, x2);
      const y = Math.min(y1, y2);
      const w = Math.abs(x2 - x1);
      const hgt = Math.abs(y2 - y1);
      if (shape.type === "rect") return [svg("rect", { ...common, x, y, width: w, height: hgt, class: "shape-rect" })];
      return [svg("ellipse", { ...common, cx: x + w / 2, cy: y + hgt / 2, rx: w / 2, ry: hgt / 2 })];
    }
    case "freehand":
      return [svg("polyline", { ...common, points: pts.map((p) => p.join(",")).join(" "), class: "shape-freehand" })];
    case "text": {
      if (!pts.length) return [];
      const [[x, y]] = pts;
      return [svg("text", { x, y, fill: color, "font-size": Math.max(12, width / 30), text: shape.text || "" })];
    }
    default:
      return [];
  }
}

// The overlay: shows `shown` (annotations of the feedback at the playhead) and the draft.
export function createOverlay() {
  const el = svg("svg", { class: "overlay", role: "img", "aria-label": "Drawing over the frame" });
  const state = { tool: null, draft: [], shown: [], current: null, onChange: null };

  const size = () => {
    const box = el.getBoundingClientRect();
    return [Math.max(1, box.width), Math.max(1, box.height)];
  };

  function redraw() {
    const [width, height] = size();
    el.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const shapes = [...state.shown, ...state.draft, ...(state.current ? [state.current] : [])];
    el.replaceChildren(...shapes.flatMap((s) => shapeElements(s, width, height)));
  }

  const point = (event) => {
    const box = el.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, Number(v.toFixed(4))));
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  };

  el.addEventListener("pointerdown", (event) => {
    if (!state.tool) return;
    event.preventDefault();
    el.setPointerCapture(event.pointerId);
    const p = point(event);
    state.current = { type: state.tool, points: state.tool === "freehand" ? [p] : [p, p], color: COLOR };
    redraw();
  });
  el.addEventListener("pointermove", (event) => {
    if (!state.current) return;
    const p = point(event);
    if (state.current.type === "freehand") {
      if (state.current.points.length < MAX_FREEHAND) state.current.points.push(p);
    } else {
      state.current.points[1] = p;
    }
    redraw();
  });
  const finish = () => {
    const shape = state.current;
    state.current = null;
    if (!shape) return;
    const [a, b] = [shape.points[0], shape.points[shape.points.length - 1]];
    const moved = Math.hypot(a[0] - b[0], a[1] - b[1]) > 0.01;
    if (moved && shape.points.length >= 2) state.draft.push(shape);
    redraw();
    if (state.onChange) state.onChange(state.draft);
  };
  el.addEventListener("pointerup", finish);
  el.addEventListener("pointercancel", finish);
  new ResizeObserver(redraw).observe(el);

  return {
    el,
    setTool(tool) {
      state.tool = tool;
      el.classList.toggle("drawing", Boolean(tool));
    },
    show(shapes) {
      state.shown = shapes;
      redraw();
    },
    draft: () => state.draft.slice(),
    clearDraft() {
      state.draft = [];
      redraw();
      if (state.onChange) state.onChange(state.draft);
    },
    onChange(listener) {
      state.onChange = listener;
    },
  };
}
