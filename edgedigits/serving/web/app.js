// The page's reader: the model runs here, in the browser, with LiteRT.js (WebAssembly, XNNPACK);
// digits are found with OpenCV.js (digits.js). No image leaves the device.
//
//   window.edgedigits.ready    a Promise, resolved when the model is loaded and compiled
//   window.edgedigits.read(s)  s: HTMLCanvasElement, HTMLImageElement, ImageData or HTMLVideoElement
//                              -> Promise<{digits, confidences, boxes, lines, crops}>
//   window.edgedigits.model    the model's description (model.json: name, labels, input, output, gate, card);
//                              with a gate, each confidence is P(a digit at all) x P(this digit), as in Python
import {loadLiteRt, loadAndCompile, Tensor} from "./vendor/litert.js";
import {DigitFinder, MNIST_SIZE} from "./digits.js";

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(script);
  });
}

async function loadOpenCv() {
  await loadScript("vendor/opencv.js");
  let cv = window.cv;
  if (cv instanceof Promise) cv = await cv;
  else if (!cv.Mat) await new Promise(resolve => { cv.onRuntimeInitialized = resolve; });
  return cv;
}

async function load() {
  const started = performance.now();
  const [description, cv] = await Promise.all([
    fetch("model.json").then(r => r.json()),
    loadOpenCv(),
    loadLiteRt("vendor/litert_wasm_compat_internal.js"),
  ]);
  const compiled = await loadAndCompile("model.tflite", {accelerator: "wasm"});
  const gate = description.gate ? await loadAndCompile("gate.tflite", {accelerator: "wasm"}) : null;
  return {description, compiled, gate, finder: new DigitFinder(cv), loadMs: performance.now() - started};
}

const loaded = load();

const MAX_SIDE = 4096;  // a larger photo is drawn smaller (a phone's 12-MP photo is not): its RGBA copy stays under 64 MB

// The source's pixels, and the factor its boxes must be divided by (1 unless it was drawn smaller).
function imageDataOf(source) {
  if (source instanceof ImageData) return [source, 1];
  const width = source.videoWidth || source.naturalWidth || source.width;
  const height = source.videoHeight || source.naturalHeight || source.height;
  if (!width || !height) throw new Error("the source has no pixels yet (an image not loaded, a video not started)");
  const factor = Math.min(1, MAX_SIDE / Math.max(width, height));
  if (source instanceof HTMLCanvasElement && factor === 1) return [source.getContext("2d").getImageData(0, 0, width, height), 1];
  const w = Math.max(1, Math.round(width * factor)), h = Math.max(1, Math.round(height * factor));
  const canvas = new OffscreenCanvas(w, h), context = canvas.getContext("2d");
  context.drawImage(source, 0, 0, w, h);
  return [context.getImageData(0, 0, w, h), factor];
}

function softmax(logits) {
  const top = Math.max(...logits), e = logits.map(v => Math.exp(v - top)), sum = e.reduce((a, b) => a + b, 0);
  return e.map(v => v / sum);
}

// Probabilities for one 28x28 crop (white ink on black, uint8), from a uint8 web model and its output's
// quantization (model.json's "output", or the gate's).
async function classify(compiled, output, crop) {
  const input = new Tensor(crop, [1, MNIST_SIZE, MNIST_SIZE, 1]);
  const outputs = await compiled.run(input);
  input.delete();
  const raw = outputs[0].toTypedArray();
  const {scale, zero_point: zero} = output;
  const probabilities = softmax(Array.from(raw, q => scale * (q - zero)));
  outputs.forEach(t => t.delete());
  return probabilities;
}

const WORD_GAP = 0.5;  // marks side by side closer than this many of the taller one's height are one word
const TEXT_WORD = 3;  // a word of at least this many marks, under half of them digits by the gate, is text

// For each mark, the share of its word's marks the gate takes for digits where the word is text, else 1: an O or
// an l among letters is a letter. A word: marks each beside another of it, on any line (recognize.text_shares).
function textShares(found, chances) {
  const parent = found.map((_, i) => i);
  const root = i => { while (parent[i] !== i) { parent[i] = parent[parent[i]]; i = parent[i]; } return i; };
  found.forEach(({box: [x, y, w, h]}, i) => {
    for (let j = i + 1; j < found.length; j++) {
      const [nx, ny, nw, nh] = found[j].box;
      const gap = Math.max(nx - (x + w), x - (nx + nw)), shared = Math.min(y + h, ny + nh) - Math.max(y, ny);
      if (gap < WORD_GAP * Math.max(h, nh) && 2 * shared >= Math.min(h, nh)) parent[root(j)] = root(i);
    }
  });
  const words = new Map();
  found.forEach((_, i) => words.set(root(i), [...(words.get(root(i)) || []), i]));
  const shares = found.map(() => 1);
  for (const members of words.values()) {
    const share = members.filter(i => chances[i] >= 0.5).length / members.length;
    if (members.length >= TEXT_WORD && share < 0.5) members.forEach(i => { shares[i] = share; });
  }
  return shares;
}

let queue = Promise.resolve();  // one read at a time: the compiled model is not re-entrant

async function read(source) {
  const model = await loaded;
  const [imageData, factor] = imageDataOf(source);
  const job = queue.then(async () => {
    const found = model.finder.find(imageData);
    const reading = {digits: "", confidences: [], boxes: [], lines: [], crops: []}, chances = [];
    for (const digit of found) {
      const p = await classify(model.compiled, model.description.output, digit.image);
      const best = p.indexOf(Math.max(...p));
      const gate = model.description.gate;  // the chance that the mark is a digit at all, as in the harness
      const isDigit = model.gate ? (await classify(model.gate, gate.output, digit.image))[gate.digit] : 1;
      chances.push(isDigit);
      reading.digits += model.description.labels[best];
      reading.confidences.push(p[best] * isDigit);
      reading.boxes.push(factor === 1 ? digit.box : digit.box.map(v => Math.round(v / factor)));
      reading.lines.push(digit.line);
      reading.crops.push(digit.image);
    }
    if (model.gate) textShares(found, chances).forEach((share, k) => { reading.confidences[k] *= share; });
    return reading;
  });
  queue = job.catch(() => {});
  return job;
}

window.edgedigits = {ready: loaded.then(m => { window.edgedigits.model = m.description; return m.loadMs; }), read};
