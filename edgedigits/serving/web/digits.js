// Image -> 28x28 MNIST-style digits and their boxes, in the browser: a line-for-line port of
// firmware_harness/preprocess.py (find_digits) on OpenCV.js, the same OpenCV as the Python side,
// so the page and `edgedigits predict` read the same digits. Keep it in step with Python and with the Android
// port (edgedigits/export/android/DigitFinder.kt); tests/test_browser.py and tests/test_android_finder.py hold
// the three together on the same images.

export const WORK_MAX_SIDE = 1024;
const WORK_MIN_SIDE = 128;
const POLARITY_MARGIN = 0.25;
const LIGHT_INK_MARGIN = 1.5;
const MAX_TILT = 12.0;
const FULL_LINE = 0.8;
const PRINTED = 0.4;
const SHEET_BORDER = 0.5;
const SHEET_AREA = 0.2;
const SHEET_SOLID = 0.9;
const SHEET_ALONE = 0.25;
const SHEET_SHADE = 1 / 8;
const EDGE_CUT = 0.1;
const SLIVER = 0.25;
const BOX_SIDE = 0.8;
const BOX_LINE = 0.12;
const HAIRLINE = 0.1;
const MIN_SNR = 4.0;
const NOISE_FLOOR = 4.0;
const MIN_CONTRAST = 24;
const SPECK_FRACTION = 0.15;
const MNIST_BOX = 20;
export const MNIST_SIZE = 28;
const MNIST_STROKE = 0.14;
const NORMALIZE_SIDE = 64;
const SPLIT_ASPECT = 1.5;
const MIN_DIGIT_PX = 12;
export const MAX_MARKS = 1000;

// Python's round(): halves to even, as the Python side rounds sizes and boxes.
export function pyRound(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sortedCopy(values) {
  return Float64Array.from(values).sort();
}

function median(values) {
  const s = sortedCopy(values), k = s.length;
  return (s[(k - 1) >> 1] + s[k >> 1]) / 2;
}

export class DigitFinder {
  constructor(cv) { this.cv = cv; }

  // Every Mat made inside fn is deleted when it returns (keep() exempts the result).
  scoped(fn) {
    const made = [];
    const mat = (...args) => { const m = new this.cv.Mat(...args); made.push(m); return m; };
    try { return fn(mat); } finally { for (const m of made) if (!m.isDeleted()) m.delete(); }
  }

  resize(src, width, height, interpolation, mat) {
    const dst = mat();
    this.cv.resize(src, dst, new this.cv.Size(width, height), 0, 0, interpolation);
    return dst;
  }

  crop(src, rect, mat) {
    const view = src.roi(rect), out = mat();
    view.copyTo(out);
    view.delete();
    return out;
  }

  ellipse(k) { return this.cv.getStructuringElement(this.cv.MORPH_ELLIPSE, new this.cv.Size(k, k)); }

  // The opening by a w x h rectangle, each side made odd, as preprocess._open: OpenCV anchors an even
  // rectangle off its centre, and the opening then keeps a run one pixel to the side of where it is.
  open(src, w, h, mat) {
    const cv = this.cv;
    return this.morph(src, cv.MORPH_OPEN, cv.getStructuringElement(cv.MORPH_RECT, new cv.Size(w | 1, h | 1)), mat);
  }

  morph(src, op, kernel, mat) {
    const dst = mat();
    this.cv.morphologyEx(src, dst, op, kernel, new this.cv.Point(-1, -1), 1, this.cv.BORDER_CONSTANT,
                         this.cv.morphologyDefaultBorderValue());
    kernel.delete();
    return dst;
  }

  // RGBA ImageData -> gray, alpha composited on white (255 - (255 - gray) * alpha), as to_gray does.
  toGray(imageData, mat) {
    const cv = this.cv, rgba = cv.matFromImageData(imageData), gray = mat();
    cv.cvtColor(rgba, gray, cv.COLOR_RGBA2GRAY);
    const g = gray.data, px = rgba.data;
    let opaque = true;
    for (let i = 3; i < px.length; i += 4) if (px[i] !== 255) { opaque = false; break; }
    if (!opaque) {
      const inverted = mat(), alpha = mat(), ink = mat();
      cv.bitwise_not(gray, inverted);
      const planes = new cv.MatVector();
      cv.split(rgba, planes);
      planes.get(3).copyTo(alpha);
      planes.delete();
      cv.multiply(inverted, alpha, ink, 1 / 255);
      cv.bitwise_not(ink, gray);
    }
    rgba.delete();
    return gray;
  }

  workingScale(rows, cols, maxSide) {
    const longSide = Math.max(rows, cols), shortSide = Math.min(rows, cols);
    if (longSide > maxSide) return maxSide / longSide;
    if (shortSide < WORK_MIN_SIDE) return Math.min(WORK_MIN_SIDE / shortSide, maxSide / longSide);
    return 1.0;
  }

  // A sheet on a darker desk with the desk painted over in the sheet's own tone; other images as they are (on_the_sheet).
  onTheSheet(gray, mat) {
    const cv = this.cv, height = gray.rows, width = gray.cols;
    const small = this.resize(gray, Math.max(width >> 2, 1), Math.max(height >> 2, 1), cv.INTER_AREA, mat);
    const light = mat(), rows = small.rows, cols = small.cols, Q = small.data;
    cv.threshold(small, light, 0, 255, cv.THRESH_BINARY + cv.THRESH_OTSU);
    const B = light.data;
    let dark = 0;
    for (let c = 0; c < cols; c++) dark += (B[c] === 0) + (B[(rows - 1) * cols + c] === 0);
    for (let r = 0; r < rows; r++) dark += (B[r * cols] === 0) + (B[r * cols + cols - 1] === 0);
    if (Math.min(rows, cols) < 8 || dark / (2 * (rows + cols)) < SHEET_BORDER || !cv.countNonZero(light)) return gray;
    // each pixel to the side whose tone near it is closer: a shadow across the sheet does not cut its shaded part off
    const reach = Math.max(rows, cols) * SHEET_SHADE;
    const sheetTone = this.localTone(small, B.map(v => v > 0), reach, mat);
    const deskTone = this.localTone(small, B.map(v => v === 0), reach, mat);
    const shaded = mat(), H = shaded.data;
    light.copyTo(shaded);
    for (let p = 0; p < B.length; p++) {
      if (Number.isFinite(sheetTone[p]) && Number.isFinite(deskTone[p])) H[p] = 2 * Q[p] > sheetTone[p] + deskTone[p] ? 255 : 0;
    }
    const inside = this.sheet(small, shaded, mat) || this.sheet(small, light, mat);
    if (!inside) return gray;
    const I = inside.data, sheet = [];
    for (let p = 0; p < I.length; p++) if (I[p]) sheet.push(Q[p]);
    // the sheet's shading carried on past its edge
    const near = this.localTone(small, I.map(v => v > 0), Math.max(rows, cols) / 4, mat), fallback = median(sheet);
    const tone = mat(rows, cols, cv.CV_32FC1);
    for (let p = 0; p < I.length; p++) tone.data32F[p] = Number.isFinite(near[p]) ? near[p] : fallback;
    const insideFull = this.resize(inside, width, height, cv.INTER_NEAREST, mat);
    const toneFull = this.resize(tone, width, height, cv.INTER_LINEAR, mat);
    const out = mat(), G = gray.data, M = insideFull.data, T = toneFull.data32F;
    gray.copyTo(out);
    for (let p = 0; p < G.length; p++) if (!M[p]) out.data[p] = Math.trunc(Math.min(Math.max(T[p], 0), 255));
    return out;
  }

  // The sheet's convex hull shrunk by two pixels (a 0/1 Mat) in a quarter-size photo, given its light side (0/255):
  // the largest light region, large, solid, nearly alone and with a step at its edge; else null (_sheet).
  sheet(small, light, mat) {
    const cv = this.cv, rows = small.rows, cols = small.cols, Q = small.data, B = light.data;
    const labels = mat(), stats = mat(), centroids = mat();
    const count = cv.connectedComponentsWithStats(light, labels, stats, centroids, 8, cv.CV_32S);
    if (count < 2) return null;
    const S = stats.data32S, L = labels.data32S;
    let i = 1;
    for (let k = 2; k < count; k++) if (S[k * 5 + 4] > S[i * 5 + 4]) i = k;
    const area = S[i * 5 + 4];
    const region = mat(rows, cols, cv.CV_8UC1, new cv.Scalar(0)), R = region.data;
    let lit = 0;
    for (let p = 0; p < L.length; p++) { R[p] = L[p] === i ? 1 : 0; lit += B[p] > 0; }
    const contours = new cv.MatVector(), hierarchy = mat();
    cv.findContours(region, contours, hierarchy, cv.RETR_EXTERNAL, cv.CHAIN_APPROX_SIMPLE);
    const points = [];
    for (let k = 0; k < contours.size(); k++) {
      const contour = contours.get(k);
      for (const v of contour.data32S) points.push(v);
      contour.delete();
    }
    contours.delete();
    const outline = cv.matFromArray(points.length / 2, 1, cv.CV_32SC2, points), hull = mat();
    cv.convexHull(outline, hull, false, true);
    outline.delete();
    if (area < SHEET_AREA * rows * cols || area < SHEET_SOLID * cv.contourArea(hull) || lit - area > SHEET_ALONE * area) return null;
    const filled = mat(rows, cols, cv.CV_8UC1, new cv.Scalar(0));
    cv.fillConvexPoly(filled, hull, new cv.Scalar(1));
    const grown = (op, k) => {
      const out = mat(), kernel = cv.Mat.ones(k, k, cv.CV_8U);
      op(filled, out, kernel, new cv.Point(-1, -1), 1, cv.BORDER_CONSTANT, cv.morphologyDefaultBorderValue());
      kernel.delete();
      return out.data;
    };
    const inside = mat(rows, cols, cv.CV_8UC1), I = inside.data, F = filled.data;
    I.set(grown(cv.erode, 5));
    const far = grown(cv.dilate, 5), within = [], beyond = [];
    let any = false;
    for (let p = 0; p < I.length; p++) {
      any = any || I[p] > 0;
      if (F[p] && !I[p]) within.push(Q[p]);
      if (far[p] && !F[p]) beyond.push(Q[p]);
    }
    // no edge: the light falling off across one sheet, not a sheet's edge on a desk
    if (!any || !beyond.length || median(within) - median(beyond) < MIN_CONTRAST) return null;
    return inside;
  }

  // The mean of the 8-bit `image` over the pixels where `where` (one 0/1 per pixel) is set, weighted by a Gaussian of
  // `sigma` round each pixel; Infinity where none is near (_local_tone).
  localTone(image, where, sigma, mat) {
    const cv = this.cv, rows = image.rows, cols = image.cols, Q = image.data;
    const ones = mat(rows, cols, cv.CV_32FC1), masked = mat(rows, cols, cv.CV_32FC1), weight = mat(), total = mat();
    for (let p = 0; p < where.length; p++) { ones.data32F[p] = where[p] ? 1 : 0; masked.data32F[p] = where[p] ? Q[p] : 0; }
    cv.GaussianBlur(ones, weight, new cv.Size(0, 0), sigma, sigma, cv.BORDER_DEFAULT);
    cv.GaussianBlur(masked, total, new cv.Size(0, 0), sigma, sigma, cv.BORDER_DEFAULT);
    const W = weight.data32F, T = total.data32F;
    return Float32Array.from(W, (w, p) => w > 1e-6 ? T[p] / Math.max(w, 1e-6) : Infinity);
  }

  // Ink is the thinner side (bright_ink in preprocess.py); where both are as wide, the stronger thin strokes.
  brightInk(gray, mat) {
    const cv = this.cv;
    const inverted = () => { const out = mat(); cv.bitwise_not(gray, out); return out; };
    const half = this.resize(gray, Math.max(gray.cols >> 1, 1), Math.max(gray.rows >> 1, 1), cv.INTER_AREA, mat);
    const [dark, light] = this.widths(half, mat);
    if (dark > 0 && light > 0 && Math.abs(Math.log2(dark / light)) >= POLARITY_MARGIN) return dark < light ? inverted() : gray;
    const k = Math.max(3, Math.floor(Math.min(half.rows, half.cols) / 16)) | 1;
    const top = half.rows * half.cols - 1 - Math.floor(half.rows * half.cols / 200);
    const [darkStrokes, lightStrokes] = [cv.MORPH_BLACKHAT, cv.MORPH_TOPHAT].map(
      op => rankU8(this.morph(half, op, this.ellipse(k), mat).data, top));
    return lightStrokes > LIGHT_INK_MARGIN * darkStrokes ? gray : inverted();  // paper's way unless clearly light
  }

  // Typical widths of the dark and of the light parts, split by Otsu once the light is evened out; given the image at half size (_widths).
  widths(gray, mat) {
    const cv = this.cv;
    const small = this.resize(gray, Math.max(gray.cols >> 2, 1), Math.max(gray.rows >> 2, 1), cv.INTER_AREA, mat);
    const small32 = mat(), blurred = mat(), gray32 = mat(), even = mat(), dark = mat(), light = mat();
    small.convertTo(small32, cv.CV_32F);
    const sigma = Math.max(1.0, Math.min(small.rows, small.cols) / 8);
    cv.GaussianBlur(small32, blurred, new cv.Size(0, 0), sigma, sigma, cv.BORDER_DEFAULT);
    const mean = this.resize(blurred, gray.cols, gray.rows, cv.INTER_LINEAR, mat);
    gray.convertTo(gray32, cv.CV_32F);
    const ratio = mat(gray.rows, gray.cols, cv.CV_32F);
    const g = gray32.data32F, m = mean.data32F, r = ratio.data32F;
    for (let i = 0; i < r.length; i++) r[i] = g[i] / Math.fround(m[i] + 1);
    cv.normalize(ratio, even, 0, 255, cv.NORM_MINMAX, cv.CV_8U);
    cv.threshold(even, dark, 0, 255, cv.THRESH_BINARY_INV + cv.THRESH_OTSU);
    cv.bitwise_not(dark, light);
    return [this.strokeWidth(dark, mat), this.strokeWidth(light, mat)];
  }

  strokeWidth(binary, mat) {
    const cv = this.cv;
    if (!cv.countNonZero(binary)) return 0.0;
    const distance = mat();
    cv.distanceTransform(binary, distance, cv.DIST_L2, 3);
    const inside = distance.data32F.filter(v => v > 0).sort();
    const k = Math.floor(0.9 * (inside.length - 1));
    return 2.0 * inside[k];
  }

  flattenLight(ink, mat) {
    const cv = this.cv;
    const half = this.resize(ink, Math.max(ink.cols >> 1, 1), Math.max(ink.rows >> 1, 1), cv.INTER_AREA, mat);
    const block = Math.max(3, Math.min(half.rows, half.cols) >> 1) | 1;
    const rough = mat();
    cv.adaptiveThreshold(half, rough, 255, cv.ADAPTIVE_THRESH_MEAN_C, cv.THRESH_BINARY, block, -10);
    const width = Math.max(2 * this.strokeWidth(this.withoutEdgeRegions(rough, mat), mat), 2.0);
    const small = this.resize(half, Math.max(half.cols >> 1, 1), Math.max(half.rows >> 1, 1), cv.INTER_AREA, mat);
    const upper = Math.max(3, Math.min(small.rows, small.cols) >> 1);
    const k = Math.trunc(Math.min(Math.max(3 * width / 4, 3), upper)) | 1;
    const opened = this.morph(small, cv.MORPH_OPEN, this.ellipse(k), mat);
    const background = this.resize(opened, ink.cols, ink.rows, cv.INTER_LINEAR, mat);
    const flat = mat();
    cv.subtract(ink, background, flat);
    return flat;
  }

  // The binary without its regions along the frame's edge, unless nothing would be left (_without_edge_regions).
  withoutEdgeRegions(binary, mat) {
    const cv = this.cv, labels = mat(), stats = mat(), centroids = mat();
    const count = cv.connectedComponentsWithStats(binary, labels, stats, centroids, 8, cv.CV_32S);
    const S = stats.data32S, height = binary.rows, width = binary.cols;
    const edge = new Uint8Array(count);
    for (let i = 1; i < count; i++) {
      const [x, y, w, h, area] = S.slice(i * 5, i * 5 + 5);
      edge[i] = (x === 0 || y === 0 || x + w === width || y + h === height) && area > 0.05 * height * width
        && area > 0.25 * w * h && alongBorder(labels.data32S, width, height, i) > 0.4 ? 1 : 0;
    }
    if (!edge.some(v => v) || edge.slice(1).every(v => v)) return binary;
    const kept = mat(), L = labels.data32S;
    binary.copyTo(kept);
    for (let p = 0; p < L.length; p++) if (edge[L[p]]) kept.data[p] = 0;
    return kept;
  }

  // Notebook rules, margins and squares, level or tilted up to MAX_TILT (remove_ruled_lines).
  removeRuledLines(binary, mat) {
    const cv = this.cv;
    let pen = null;
    const stroke = () => (pen === null ? (pen = this.strokeWidth(binary, mat)) : pen);  // once, if there is a line
    let lines = this.levelLines(binary, stroke, mat);
    const turned = mat();
    cv.transpose(binary, turned);
    const downTurned = this.levelLines(turned, stroke, mat);
    if (!lines && !downTurned) return binary;
    if (downTurned) {
      const down = mat();
      cv.transpose(downTurned, down);
      if (lines) { const both = mat(); cv.bitwise_or(lines, down, both); lines = both; } else lines = down;
    }
    const kept = mat();
    cv.subtract(binary, lines, kept);
    return kept;
  }

  // The pixels of the thin straight lines running across a 0/255 image, or null (_level_lines).
  // The binary without the frames of form boxes drawn round digits (remove_form_boxes).
  removeFormBoxes(binary, mat) {
    const cv = this.cv, labels = mat(), stats = mat(), centroids = mat();
    const count = cv.connectedComponentsWithStats(binary, labels, stats, centroids, 8, cv.CV_32S);
    const S = stats.data32S, L = labels.data32S, width = binary.cols;
    const candidates = [];
    let covered = 0;
    for (let i = 1; i < count; i++) {
      const [, , w, h, area] = S.slice(i * 5, i * 5 + 5);
      if (w >= MIN_DIGIT_PX && h >= MIN_DIGIT_PX && area < 0.75 * w * h) { candidates.push(i); covered += w * h; }
    }
    if (!candidates.length || candidates.length > MAX_MARKS || covered > 4 * binary.rows * binary.cols) return binary;
    const lines = mat(binary.rows, binary.cols, cv.CV_8UC1, new cv.Scalar(0)), D = lines.data, B = binary.data;
    let any = false;
    for (const i of candidates) {
      const [x, y, w, h] = S.slice(i * 5, i * 5 + 4);
      const mask = mat(h, w, cv.CV_8UC1), ink = mat(h, w, cv.CV_8UC1);
      for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
        const p = (y + r) * width + x + c;
        mask.data[r * w + c] = L[p] === i ? 255 : 0;
        ink.data[r * w + c] = B[p];
      }
      const frame = framed(mask) ? this.boxFrame(mask, ink, mat) : null;
      if (!frame) continue;
      for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
        if (frame.data[r * w + c]) { D[(y + r) * width + x + c] = 255; any = true; }
      }
    }
    if (!any) return binary;
    const out = mat();
    cv.subtract(binary, lines, out);
    return out;
  }

  // The frame's pixels if the mask of one mark is form boxes holding ink, else null (_box_frame).
  boxFrame(mask, ink, mat) {
    const cv = this.cv, xy = [];
    for (let r = 0; r < mask.rows; r++) for (let c = 0; c < mask.cols; c++) if (mask.data[r * mask.cols + c]) xy.push(c, r);
    const points = cv.matFromArray(xy.length / 2, 1, cv.CV_32SC2, xy);
    const rect = cv.minAreaRect(points);
    points.delete();
    let angle = rect.angle, rw = rect.size.width, rh = rect.size.height;
    while (angle > 45) [angle, rw, rh] = [angle - 90, rh, rw];
    while (angle < -45) [angle, rw, rh] = [angle + 90, rh, rw];
    if (Math.abs(angle) > MAX_TILT || Math.min(rw, rh) < MIN_DIGIT_PX) return null;
    const pad = Math.floor(Math.max(mask.rows, mask.cols) / 4) + 2;
    const size = new cv.Size(mask.cols + 2 * pad, mask.rows + 2 * pad);
    const cx = rect.center.x, cy = rect.center.y;
    const turn = mat(), made = cv.getRotationMatrix2D(new cv.Point(cx + pad, cy + pad), angle, 1.0);
    made.copyTo(turn);
    made.delete();
    const [level, held] = [mask, ink].map(m => {
      const padded = mat(), out = mat();
      cv.copyMakeBorder(m, padded, pad, pad, pad, pad, cv.BORDER_CONSTANT, new cv.Scalar(0));
      cv.warpAffine(padded, out, turn, size, cv.INTER_NEAREST, cv.BORDER_CONSTANT, new cv.Scalar(0));
      return out;
    });
    const x0 = Math.max(pyRound(cx + pad - rw / 2), 0), y0 = Math.max(pyRound(cy + pad - rh / 2), 0);
    const x1 = Math.min(x0 + pyRound(rw), size.width), y1 = Math.min(y0 + pyRound(rh), size.height);
    const roi = new cv.Rect(x0, y0, x1 - x0, y1 - y0);
    const box = this.crop(level, roi, mat), heldBox = this.crop(held, roi, mat);
    const height = box.rows, width = box.cols;
    const band = Math.max(2, Math.trunc(0.15 * Math.min(height, width)));
    const across = this.open(box, Math.max(3, Math.floor(width / 3)), 1, mat);
    const down = this.open(box, 1, Math.max(3, Math.floor(height / 2)), mat);
    const A = across.data, Dn = down.data;
    const counts = [], cover = [0, 0, 0, 0];
    for (let c = 0; c < width; c++) {
      let top = 0, bottom = 0;
      for (let r = 0; r < band; r++) { top += A[r * width + c] > 0; bottom += A[(height - 1 - r) * width + c] > 0; }
      counts.push(top, bottom);
      cover[0] += top > 0; cover[1] += bottom > 0;
    }
    for (let r = 0; r < height; r++) {
      let left = 0, right = 0;
      for (let c = 0; c < band; c++) { left += Dn[r * width + c] > 0; right += Dn[r * width + width - 1 - c] > 0; }
      counts.push(left, right);
      cover[2] += left > 0; cover[3] += right > 0;
    }
    const lit = counts.filter(v => v > 0);
    const line = lit.length ? Math.trunc(median(lit)) : 1;
    if (line > BOX_LINE * Math.min(height, width)) return null;
    if (Math.min(cover[0] / width, cover[1] / width, cover[2] / height, cover[3] / height) < BOX_SIDE) return null;
    const thick = 2 * line + 2;
    const thickAcross = this.open(box, 1, thick, mat), thickDown = this.open(box, thick, 1, mat);
    const thinAcross = mat(), thinDown = mat(), frame = mat(), rest = mat();
    cv.subtract(across, thickAcross, thinAcross);
    cv.subtract(down, thickDown, thinDown);
    cv.bitwise_or(thinAcross, thinDown, frame);
    cv.subtract(heldBox, frame, rest);
    let inner = 0;
    for (let r = band; r < height - band; r++) for (let c = band; c < width - band; c++) inner += rest.data[r * width + c] > 0;
    if (inner < 0.02 * (height - 2 * band) * (width - 2 * band)) return null;
    const lines = mat(size.height, size.width, cv.CV_8UC1, new cv.Scalar(0));
    const view = lines.roi(roi);
    frame.copyTo(view);
    view.delete();
    const inverse = mat(), back = mat(), touched = mat(), wide = mat(), kernel = cv.Mat.ones(3, 3, cv.CV_8U);
    cv.invertAffineTransform(turn, inverse);
    cv.warpAffine(lines, back, inverse, size, cv.INTER_LINEAR, cv.BORDER_CONSTANT, new cv.Scalar(0));
    cv.threshold(back, touched, 0, 255, cv.THRESH_BINARY);
    cv.dilate(touched, wide, kernel, new cv.Point(-1, -1), 1, cv.BORDER_CONSTANT, cv.morphologyDefaultBorderValue());
    kernel.delete();
    const out = mat();
    cv.bitwise_and(this.crop(wide, new cv.Rect(pad, pad, mask.cols, mask.rows), mat), mask, out);
    return out;
  }

  levelLines(binary, stroke, mat) {
    const cv = this.cv, height = binary.rows, width = binary.cols;
    const length = Math.max(15, Math.floor(width / 3));
    if (cv.countNonZero(binary) < length) return null;
    const tilt = MAX_TILT * Math.PI / 180, found = mat(), quarter = mat();
    const shrunk = this.resize(binary, Math.max(width >> 2, 1), Math.max(height >> 2, 1), cv.INTER_AREA, mat);
    cv.threshold(shrunk, quarter, 0, 255, cv.THRESH_BINARY);  // the slope, found at a quarter of the size
    cv.HoughLines(quarter, found, 1, Math.PI / 720, length >> 2, 0, 0, Math.PI / 2 - tilt, Math.PI / 2 + tilt);
    if (!found.rows) return null;
    const slope = found.data32F[1] * (180 / Math.PI) - 90.0;
    const center = new cv.Point(width / 2, height / 2), size = new cv.Size(width, height);
    let level = binary;
    if (slope !== 0) {
      const turn = cv.getRotationMatrix2D(center, slope, 1.0);
      level = mat();
      cv.warpAffine(binary, level, turn, size, cv.INTER_NEAREST, cv.BORDER_CONSTANT, new cv.Scalar(0));
      turn.delete();
    }
    const longRuns = openRows(level, length | 1, mat);
    if (!cv.countNonZero(longRuns)) return null;
    const rule = Math.max(3, Math.floor(height / 40));
    let lines = mat();
    cv.subtract(longRuns, this.open(level, 1, rule, mat), lines);
    const printed = Math.trunc(PRINTED * stroke());
    if (printed > rule) {  // a line across FULL_LINE of the image: printed where it is thinner than PRINTED of a pen
      const full = openRows(longRuns, Math.trunc(FULL_LINE * width) | 1, mat);
      if (cv.countNonZero(full)) {
        const thin = mat(), both = mat();
        cv.subtract(full, this.open(level, 1, printed, mat), thin);
        cv.bitwise_or(lines, thin, both);
        lines = both;
      }
    }
    if (slope !== 0) {
      const back = mat(), touched = mat(), wide = mat(), kernel = cv.Mat.ones(3, 3, cv.CV_8U);
      const turnBack = cv.getRotationMatrix2D(center, -slope, 1.0);
      cv.warpAffine(lines, back, turnBack, size, cv.INTER_LINEAR, cv.BORDER_CONSTANT, new cv.Scalar(0));
      turnBack.delete();
      cv.threshold(back, touched, 0, 255, cv.THRESH_BINARY);
      cv.dilate(touched, wide, kernel, new cv.Point(-1, -1), 1, cv.BORDER_CONSTANT, cv.morphologyDefaultBorderValue());
      kernel.delete();
      lines = wide;
    }
    return lines;
  }

  // Ink components by hysteresis (see _components in preprocess.py).
  components(flat, level, mat) {
    const cv = this.cv;
    const lit = mat();
    cv.threshold(flat, lit, 0.5 * level, 255, cv.THRESH_BINARY);
    const unboxed = this.removeFormBoxes(lit, mat);
    let weak = this.removeRuledLines(unboxed, mat);
    if (unboxed !== lit) {  // a box's lines are not ink: the ink's level without them, and the ink at that level
      const boxes = mat(), near = mat(), kernel = cv.Mat.ones(3, 3, cv.CV_8U), cleared = mat();
      cv.subtract(lit, unboxed, boxes);
      cv.dilate(boxes, near, kernel, new cv.Point(-1, -1), 1, cv.BORDER_CONSTANT, cv.morphologyDefaultBorderValue());
      kernel.delete();
      flat.copyTo(cleared);
      for (let p = 0; p < near.data.length; p++) if (near.data[p]) cleared.data[p] = 0;
      flat = cleared;
      const counts = new Float64Array(256);
      for (const v of flat.data) counts[v]++;
      level = otsuLevel(counts);
      const relit = mat();
      cv.threshold(flat, relit, 0.5 * level, 255, cv.THRESH_BINARY);
      weak = this.removeRuledLines(this.removeFormBoxes(relit, mat), mat);
    }
    const labels = mat(), stats = mat(), centroids = mat();
    const count = cv.connectedComponentsWithStats(weak, labels, stats, centroids, 8, cv.CV_32S);
    const L = labels.data32S, S = stats.data32S, F = flat.data;
    const height = flat.rows, width = flat.cols;
    const areas = new Float64Array(count);
    for (let i = 0; i < count; i++) areas[i] = S[i * 5 + cv.CC_STAT_AREA];
    const minArea = Math.max(12, Math.trunc(2e-5 * height * width));
    const sure = new Uint8Array(count);
    for (let p = 0; p < F.length; p++) if (F[p] > level) sure[L[p]] = 1;
    sure[0] = 0;
    const blobs = [];
    for (let i = 0; i < count; i++) {
      if (!(areas[i] >= minArea && sure[i])) continue;
      const [x, y, w, h, area] = S.slice(i * 5, i * 5 + 5);
      const touches = x === 0 || y === 0 || x + w === width || y + h === height;
      const longSide = Math.max(w, h), cut = EDGE_CUT * Math.min(height, width);
      if (touches && (longSide < cut || longSide < 2 * cut && Math.min(w, h) < SLIVER * longSide)) continue;
      if (touches && alongBorder(L, width, height, i) > 0.4 && !this.digitLike(L, S, i, height, width, count, mat)) continue;
      blobs.push({x0: x, y0: y, x1: x + w, y1: y + h, labels: [i]});
    }
    return {labels, blobs, areas};
  }

  // Ink along the frame's edge that is a digit filling the frame, not a page edge, desk, texture or frame (_digit_like).
  digitLike(L, S, i, height, width, count, mat) {
    const cv = this.cv;
    const [x, y, w, h, area] = S.slice(i * 5, i * 5 + 5);
    if (Math.min(w / width, h / height) < 0.08 || area > 0.85 * w * h) return false;
    if (area <= 0.3 * height * width) return true;
    const mask = mat(h + 2, w + 2, cv.CV_8UC1, new cv.Scalar(0)), M = mask.data;
    for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) if (L[(y + r) * width + x + c] === i) M[(r + 1) * (w + 2) + c + 1] = 255;
    if (this.strokeWidth(mask, mat) < HAIRLINE * Math.min(w, h)) return false;
    const paperMask = mat(), paper = mat();
    cv.bitwise_not(mask, paperMask);
    cv.connectedComponents(paperMask, paper, 4, cv.CV_32S);
    const P = paper.data32S, outside = P[0], inside = new Float64Array(count);
    for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
      const q = P[(r + 1) * (w + 2) + c + 1];
      if (q > 0 && q !== outside) inside[L[(y + r) * width + x + c]]++;
    }
    inside[0] = inside[i] = 0;
    const enough = Math.max(12, 0.02 * area);
    return !inside.some(v => v >= enough);
  }

  // Blobs much fainter than the strongest or than the unlit pixels around them are dropped (_contrasted).
  contrasted(blobs, labels, flat, areas) {
    if (!blobs.length) return blobs;
    const sums = new Float64Array(areas.length), L = labels.data32S, F = flat.data;
    for (let p = 0; p < L.length; p++) sums[L[p]] += F[p];
    const means = blobs.map(b => sums[b.labels[0]] / areas[b.labels[0]]);
    const strongest = Math.max(...means);
    const height = flat.rows, width = flat.cols, stride = width + 1;
    const level = new Float64Array((height + 1) * stride), count = new Float64Array((height + 1) * stride);
    for (let yy = 0; yy < height; yy++) {
      let rowLevel = 0, rowCount = 0;
      for (let xx = 0; xx < width; xx++) {
        const p = yy * width + xx;
        if (L[p] === 0) { rowLevel += F[p]; rowCount++; }
        level[(yy + 1) * stride + xx + 1] = level[yy * stride + xx + 1] + rowLevel;
        count[(yy + 1) * stride + xx + 1] = count[yy * stride + xx + 1] + rowCount;
      }
    }
    return blobs.filter((b, k) => {
      const x0 = Math.max(b.x0 - (b.x1 - b.x0), 0), y0 = Math.max(b.y0 - (b.y1 - b.y0), 0);
      const x1 = Math.min(2 * b.x1 - b.x0, width), y1 = Math.min(2 * b.y1 - b.y0, height);
      const window = t => t[y1 * stride + x1] - t[y0 * stride + x1] - t[y1 * stride + x0] + t[y0 * stride + x0];
      const around = window(level) / Math.max(window(count), 1);
      return means[k] >= 0.4 * strongest && means[k] >= MIN_SNR * (around + NOISE_FLOOR) && means[k] >= MIN_CONTRAST;
    });
  }

  typicalHeight(blobs, areas) {
    if (!blobs.length) return 0.0;
    const ink = blobs.map(b => b.labels.reduce((s, i) => s + areas[i], 0));
    const enough = 0.1 * Math.max(...ink);
    return median(blobs.filter((b, k) => ink[k] >= enough).map(b => b.y1 - b.y0));
  }

  // Whether boxes a and b ([x0, y0, x1, y1]) are pieces of one digit (_one_digit_matrix, one pair).
  oneDigit(a, b, typical) {
    const [ax0, ay0, ax1, ay1] = a, [bx0, by0, bx1, by1] = b;
    const aw = ax1 - ax0, ah = ay1 - ay0, bw = bx1 - bx0, bh = by1 - by0;
    const jw = Math.max(ax1, bx1) - Math.min(ax0, bx0), jh = Math.max(ay1, by1) - Math.min(ay0, by0);
    if (!(jh <= 1.8 * Math.max(ah, bh, typical))) return false;
    const overlap = Math.min(ax1, bx1) - Math.max(ax0, bx0), gap = Math.max(ay0, by0) - Math.min(ay1, by1);
    const stacked = overlap >= 0.5 * Math.min(aw, bw) && gap <= 0.5 * Math.max(ah, bh) && jw <= 1.2 * jh;
    const topStroke = (x0, y0, x1, y1, w, h, cx0, cy0, cx1, ch) => {
      const near = 0.1 * ch;
      return w >= h && h <= 0.5 * ch && cy0 - near <= y1 && y1 <= cy0 + 0.5 * ch
        && x0 <= cx1 + near && x1 >= cx0 - near && jw <= 1.6 * jh;
    };
    return stacked || topStroke(ax0, ay0, ax1, ay1, aw, ah, bx0, by0, bx1, bh)
      || topStroke(bx0, by0, bx1, by1, bw, bh, ax0, ay0, ax1, ah);
  }

  // Merge the first pair (in list order) of pieces of one digit, again and again (_merge_pieces).
  mergePieces(blobs, typical) {
    const n = blobs.length;
    if (n < 2) return blobs;
    const box = blobs.map(b => [b.x0, b.y0, b.x1, b.y1]);
    const alive = new Uint8Array(n).fill(1), pairs = new Uint8Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++)
      pairs[i * n + j] = pairs[j * n + i] = this.oneDigit(box[i], box[j], typical);
    const laterOf = r => { for (let c = r + 1; c < n; c++) if (pairs[r * n + c]) return true; return false; };
    const later = new Uint8Array(n);
    for (let r = 0; r < n; r++) later[r] = laterOf(r);
    for (let i = later.indexOf(1); i >= 0; i = later.indexOf(1)) {
      let j = i + 1;
      while (!pairs[i * n + j]) j++;
      const touched = [];
      for (let r = 0; r < n; r++) if (pairs[r * n + i] || pairs[r * n + j]) touched.push(r);
      const a = blobs[i], b = blobs[j];
      blobs[i] = {x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1),
                  y1: Math.max(a.y1, b.y1), labels: a.labels.concat(b.labels)};
      box[i] = [blobs[i].x0, blobs[i].y0, blobs[i].x1, blobs[i].y1];
      alive[j] = 0;
      for (let r = 0; r < n; r++) pairs[j * n + r] = pairs[r * n + j] = 0;
      for (let r = 0; r < n; r++) {
        const v = r !== i && alive[r] && this.oneDigit(box[i], box[r], typical) ? 1 : 0;
        pairs[i * n + r] = pairs[r * n + i] = v;
        if (v) touched.push(r);
      }
      for (const r of touched.concat([i, j])) later[r] = laterOf(r);
    }
    return blobs.filter((b, k) => alive[k]);
  }

  isLine(b, typical) {
    const w = b.x1 - b.x0, h = b.y1 - b.y0;
    return (w > 5 * h && w > 2 * typical) || (h > 12 * w && h > 2 * typical);
  }

  // The blob's pixels as a 0/255 Uint8Array of its box (row-major), with its width and height.
  mask(labels, b) {
    const w = b.x1 - b.x0, h = b.y1 - b.y0, L = labels.data32S, cols = labels.cols;
    const own = new Set(b.labels), data = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++)
      if (own.has(L[(b.y0 + y) * cols + b.x0 + x])) data[y * w + x] = 255;
    return {data, w, h};
  }

  splitTouching(m) {
    const {data, w, h} = m;
    const n = w > SPLIT_ASPECT * h ? pyRound(w / (0.75 * h)) : 1;
    if (n < 2) return [[0, w]];
    const ink = new Float64Array(w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) ink[x] += data[y * w + x] > 0;
    const typicalColumn = median(ink.filter(v => v > 0));
    const cuts = [0], step = w / n;
    for (let k = 1; k < n; k++) {
      const lo = Math.trunc(k * step - 0.25 * step), hi = Math.max(Math.trunc(k * step + 0.25 * step), lo + 1);
      let cut = lo;
      for (let c = lo; c < hi; c++) if (ink[c] < ink[cut]) cut = c;
      if (ink[cut] > 0.5 * typicalColumn) return [[0, w]];
      cuts.push(cut);
    }
    cuts.push(w);
    const parts = cuts.slice(0, -1).map((a, k) => [a, cuts[k + 1]]);
    for (const [a, b] of parts) {
      let first = -1, last = -1;
      for (let y = 0; y < h; y++) {
        let any = false;
        for (let x = a; x < b && !any; x++) any = data[y * w + x] > 0;
        if (any) { if (first < 0) first = y; last = y; }
      }
      if (b - a < 0.3 * h || first < 0 || last - first + 1 < 0.65 * h) return [[0, w]];
    }
    return parts;
  }

  // A 0/255 digit mask ({data, w, h}) -> 28x28 uint8 in MNIST form (to_mnist).
  toMnist(m) {
    const cv = this.cv;
    return this.scoped(mat => {
      let mask = cv.matFromArray(m.h, m.w, cv.CV_8UC1, m.data);
      const adopt = x => { if (x !== mask) { if (!mask.isDeleted()) mask.delete(); } return x; };
      const cropped = src => {
        const view = src.roi(cv.boundingRect(src)), copy = view.clone();
        view.delete();
        return copy;
      };
      if (!cv.countNonZero(mask)) { mask.delete(); return new Uint8Array(MNIST_SIZE * MNIST_SIZE); }
      mask = adopt(cropped(mask));
      if (Math.max(mask.rows, mask.cols) > NORMALIZE_SIDE) {
        const scale = NORMALIZE_SIDE / Math.max(mask.rows, mask.cols);
        const small = this.resize(mask, Math.max(1, pyRound(mask.cols * scale)), Math.max(1, pyRound(mask.rows * scale)),
                                  cv.INTER_AREA, mat);
        const binary = new cv.Mat();
        cv.threshold(small, binary, 127, 255, cv.THRESH_BINARY);
        mask = adopt(binary);
        if (!cv.countNonZero(mask)) { mask.delete(); return new Uint8Array(MNIST_SIZE * MNIST_SIZE); }
      }
      const longSide = Math.max(mask.rows, mask.cols), pad = Math.max(2, Math.floor(longSide / 8));
      const padded = new cv.Mat();
      cv.copyMakeBorder(mask, padded, pad, pad, pad, pad, cv.BORDER_CONSTANT, new cv.Scalar(0));
      mask = adopt(padded);
      const width = this.strokeWidth(mask, mat), target = MNIST_STROKE * longSide;
      if (width < 0.7 * target || width > 1.6 * target) {
        const radius = Math.trunc(pyRound(Math.abs(target - width) / 2));
        if (radius) {
          const kernel = this.ellipse(2 * radius + 1), adjusted = new cv.Mat();
          const args = [new cv.Point(-1, -1), 1, cv.BORDER_CONSTANT, cv.morphologyDefaultBorderValue()];
          if (width < target) cv.dilate(mask, adjusted, kernel, ...args); else cv.erode(mask, adjusted, kernel, ...args);
          kernel.delete();
          if (cv.countNonZero(adjusted)) mask = adopt(adjusted); else adjusted.delete();
        }
      }
      mask = adopt(cropped(mask));
      const h = mask.rows, w = mask.cols, scale = MNIST_BOX / Math.max(h, w);
      const fitted = this.resize(mask, Math.max(1, pyRound(w * scale)), Math.max(1, pyRound(h * scale)),
                                 scale < 1 ? cv.INTER_AREA : cv.INTER_LINEAR, mat);
      mask.delete();
      const moments = cv.moments(fitted, false);
      if (moments.m00 === 0) return new Uint8Array(MNIST_SIZE * MNIST_SIZE);
      const cx = moments.m10 / moments.m00, cy = moments.m01 / moments.m00;
      const shift = cv.matFromArray(2, 3, cv.CV_32F, [1, 0, MNIST_SIZE / 2 - 0.5 - cx, 0, 1, MNIST_SIZE / 2 - 0.5 - cy]);
      const out = mat();
      cv.warpAffine(fitted, out, shift, new cv.Size(MNIST_SIZE, MNIST_SIZE), cv.INTER_LINEAR, cv.BORDER_CONSTANT,
                    new cv.Scalar(0));
      shift.delete();
      return Uint8Array.from(out.data);
    });
  }

  // Lines top to bottom, digits left to right (_reading_order).
  readingOrder(found, scale) {
    const lines = [];
    const order = found.slice().sort((a, b) => (a.y + a.h / 2) - (b.y + b.h / 2));
    for (const item of order) {
      const cy = item.y + item.h / 2;
      let line = lines.find(l => Math.abs(cy - l.centerSum / l.items.length) < 0.5 * Math.max(median(l.heights), item.h));
      if (!line) { line = {items: [], centerSum: 0, heights: []}; lines.push(line); }
      line.items.push(item); line.centerSum += cy; line.heights.push(item.h);
    }
    const digits = [];
    lines.forEach((line, number) => {
      for (const item of line.items.slice().sort((a, b) => a.x - b.x)) {
        const box = [item.x, item.y, item.w, item.h].map(v => pyRound(v / scale));
        digits.push({image: this.toMnist(item.mask), box, line: number});
      }
    });
    return digits;
  }

  // All digits in an RGBA ImageData, in reading order: [{image: Uint8Array(784), box: [x, y, w, h], line}].
  find(imageData, maxSide = WORK_MAX_SIDE) {
    const cv = this.cv;
    return this.scoped(mat => {
      let gray = this.toGray(imageData, mat);
      const scale = this.workingScale(gray.rows, gray.cols, maxSide);
      if (scale !== 1.0) {
        gray = this.resize(gray, Math.max(1, pyRound(gray.cols * scale)), Math.max(1, pyRound(gray.rows * scale)),
                           scale < 1 ? cv.INTER_AREA : cv.INTER_LINEAR, mat);
      }
      const blurred = mat();
      cv.GaussianBlur(this.onTheSheet(gray, mat), blurred, new cv.Size(3, 3), 0, 0, cv.BORDER_DEFAULT);
      const flat = this.flattenLight(this.brightInk(blurred, mat), mat);
      const counts = new Float64Array(256);
      for (const v of flat.data) counts[v]++;
      if (percentileU8(counts, 99.5) < MIN_CONTRAST) return [];
      const {labels, blobs: found, areas} = this.components(flat, otsuLevel(counts), mat);
      let blobs = this.contrasted(found, labels, flat, areas);
      if (!blobs.length) return [];
      let typical = this.typicalHeight(blobs, areas);
      blobs = blobs.filter(b => b.y1 - b.y0 >= SPECK_FRACTION * typical);
      if (blobs.length > MAX_MARKS) {
        throw new Error(`${blobs.length.toLocaleString("en")} digit-sized marks, more than the ` +
                        `${MAX_MARKS.toLocaleString("en")} one image is read for; crop the image to the digits`);
      }
      blobs = this.mergePieces(blobs, typical);
      typical = this.typicalHeight(blobs, areas);
      blobs = blobs.filter(b => !this.isLine(b, typical) && b.y1 - b.y0 >= Math.max(0.4 * typical, MIN_DIGIT_PX));
      const items = [];
      for (const blob of blobs) {
        const m = this.mask(labels, blob);
        for (const [a, b] of this.splitTouching(m)) {
          const part = new Uint8Array(m.h * (b - a));
          let any = false;
          for (let y = 0; y < m.h; y++) for (let x = a; x < b; x++) {
            const v = m.data[y * m.w + x];
            part[y * (b - a) + x - a] = v;
            any = any || v > 0;
          }
          if (any) items.push({x: blob.x0 + a, y: blob.y0, w: b - a, h: m.h, mask: {data: part, w: b - a, h: m.h}});
        }
      }
      return this.readingOrder(items, scale);
    });
  }
}

// cv.morphologyEx(MORPH_OPEN) with a (length x 1) rectangle on a 0/255 image, as OpenCV computes it
// (anchor at length >> 1, the erosion's border counted as ink, the dilation's as background), in
// one pass per row over prefix sums: OpenCV.js takes ~70 ms for it in Chromium on a 640x480 frame.
export function openRows(binary, length, mat) {
  const width = binary.cols, height = binary.rows, src = binary.data, out = mat(height, width, binary.type());
  const dst = out.data, a = length >> 1;
  const zeros = new Int32Array(width + 1), kept = new Int32Array(width + 1);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) zeros[x + 1] = zeros[x] + (src[row + x] === 0);
    for (let x = 0; x < width; x++) {  // eroded: no background pixel in the window's part inside the image
      const lo = Math.max(0, x - a), hi = Math.min(width - 1, x - a + length - 1);
      kept[x + 1] = kept[x] + (zeros[hi + 1] - zeros[lo] === 0);
    }
    for (let x = 0; x < width; x++) {  // dilated: some eroded pixel in the window
      const lo = Math.max(0, x - a), hi = Math.min(width - 1, x - a + length - 1);
      dst[row + x] = kept[hi + 1] - kept[lo] > 0 ? 255 : 0;
    }
  }
  return out;
}

// The largest fraction of one side of the frame that component i runs along (_along_border).
function alongBorder(L, width, height, i) {
  const sides = [0, 0, 0, 0];
  for (let x = 0; x < width; x++) { sides[0] += L[x] === i; sides[1] += L[(height - 1) * width + x] === i; }
  for (let y = 0; y < height; y++) { sides[2] += L[y * width] === i; sides[3] += L[y * width + width - 1] === i; }
  return Math.max(sides[0] / width, sides[1] / width, sides[2] / height, sides[3] / height);
}

// The value of rank k (0 = smallest) among uint8 values, as np.partition(values, k)[k].
// Ink near all four sides of the mark's box along half of each: the cheap test before levelling a frame (_framed).
function framed(mask) {
  const rows = mask.rows, cols = mask.cols, M = mask.data, band = Math.max(2, Math.trunc(0.15 * Math.min(rows, cols)));
  const cover = [0, 0, 0, 0];
  for (let c = 0; c < cols; c++) {
    let top = false, bottom = false;
    for (let r = 0; r < band; r++) { top = top || M[r * cols + c] > 0; bottom = bottom || M[(rows - 1 - r) * cols + c] > 0; }
    cover[0] += top; cover[1] += bottom;
  }
  for (let r = 0; r < rows; r++) {
    let left = false, right = false;
    for (let c = 0; c < band; c++) { left = left || M[r * cols + c] > 0; right = right || M[r * cols + cols - 1 - c] > 0; }
    cover[2] += left; cover[3] += right;
  }
  return Math.min(cover[0] / cols, cover[1] / cols, cover[2] / rows, cover[3] / rows) >= 0.5;
}

function rankU8(values, k) {
  const counts = new Float64Array(256);
  for (const v of values) counts[v]++;
  let seen = 0;
  for (let v = 0; v < 256; v++) { seen += counts[v]; if (seen > k) return v; }
  return 255;
}

export function percentileU8(counts, q) {
  let total = 0;
  for (const c of counts) total += c;
  const wanted = q / 100.0 * total;
  let cumulative = 0;
  for (let i = 0; i < 256; i++) { cumulative += counts[i]; if (cumulative >= wanted) return i; }
  return 256;
}

export function otsuLevel(counts) {
  let total = 0, totalMean = 0;
  for (let i = 0; i < 256; i++) { total += counts[i]; totalMean += i * counts[i]; }
  if (!total) return 0;
  let weight = 0, mean = 0, best = -1, level = 0;
  for (let i = 0; i < 255; i++) {
    weight += counts[i]; mean += i * counts[i];
    const background = weight, foreground = total - weight;
    if (foreground <= 0 || background <= 0) continue;
    const between = (totalMean * background - mean * total) ** 2 / (background * foreground);
    if (between > best) { best = between; level = i; }
  }
  return level;
}
