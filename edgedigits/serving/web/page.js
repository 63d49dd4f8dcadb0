// The page's controls: draw (mouse or touch), a photo, or the live camera; each is read by
// window.edgedigits.read (app.js), here in the browser.
const $ = id => document.getElementById(id);
const reader = window.edgedigits;

if ("serviceWorker" in navigator && window.isSecureContext) {
  navigator.serviceWorker.register("sw.js").catch(e => console.warn("no offline copy:", e));
}

reader.ready.then(ms => { $("loading").textContent = `Model ready in ${Math.round(ms)} ms.`; },
                  e => { $("loading").textContent = ""; $("status").textContent = `The model did not load: ${e.message}`; });

// Tabs
for (const button of document.querySelectorAll(".tabs button")) {
  button.onclick = () => {
    for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("on", b === button);
    $("draw").hidden = button.dataset.tab !== "draw";
    $("photo-tab").hidden = button.dataset.tab !== "photo";
    $("camera").hidden = button.dataset.tab !== "camera";
    if (button.dataset.tab !== "camera") stopCamera();
  };
}

function show(reading, ms) {
  $("status").textContent = "";
  const lines = {};
  [...reading.digits].forEach((d, i) => { lines[reading.lines[i]] = (lines[reading.lines[i]] || "") + d; });
  $("digits").textContent = Object.values(lines).join("\n") || "no digits";
  $("latency").textContent = ms === undefined ? "" : `read in ${ms.toFixed(1)} ms, in this browser`;
  const bars = $("bars");
  bars.replaceChildren();
  [...reading.digits].forEach((d, i) => {
    const row = document.createElement("div"), crop = document.createElement("canvas"), p = reading.confidences[i];
    row.className = "bar";
    crop.width = crop.height = 28;
    const pixels = new ImageData(28, 28);
    reading.crops[i].forEach((v, k) => pixels.data.set([v, v, v, 255], 4 * k));
    crop.getContext("2d").putImageData(pixels, 0, 0);
    row.append(crop);
    const label = document.createElement("b"), fill = document.createElement("div"), percent = document.createElement("span");
    label.textContent = d;  // the labels come from the model file: text, never markup
    fill.className = "fill";
    fill.style.width = `${Math.round(p * 200)}px`;
    percent.textContent = `${(p * 100).toFixed(1)}%`;
    row.append(label, fill, percent);
    bars.append(row);
  });
}

async function readAndShow(source) {
  try {
    const started = performance.now();
    const reading = await reader.read(source);
    show(reading, performance.now() - started);
  } catch (e) {
    $("status").textContent = e.message;
  }
}

// Drawing: pointer events cover mouse, pen and touch; the canvas is read when a stroke ends.
const canvas = $("canvas"), ctx = canvas.getContext("2d");
function clearCanvas() { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
clearCanvas();
ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#111";
let drawing = false;
function point(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}
canvas.addEventListener("pointerdown", e => {
  drawing = true; canvas.setPointerCapture(e.pointerId);
  const [x, y] = point(e); ctx.beginPath(); ctx.moveTo(x, y);
});
canvas.addEventListener("pointermove", e => { if (!drawing) return; const [x, y] = point(e); ctx.lineTo(x, y); ctx.stroke(); });
canvas.addEventListener("pointerup", () => { if (drawing) { drawing = false; readAndShow(canvas); } });
$("clear").onclick = () => { clearCanvas(); $("digits").textContent = ""; $("bars").replaceChildren(); $("latency").textContent = ""; };

// A photo: chosen or dropped, decoded by the browser, read here.
function readFile(file) {
  if (!file) return;
  const photo = $("photo"), url = URL.createObjectURL(file);
  photo.onload = () => { readAndShow(photo); URL.revokeObjectURL(url); };
  photo.onerror = () => { $("status").textContent = `${file.name} is not an image this browser can decode`; };
  photo.src = url;
}
$("file").onchange = e => readFile(e.target.files[0]);
const drop = $("drop");
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); readFile(e.dataTransfer.files[0]); });

// The camera: the rear one where there is one; boxes and digits drawn over the video.
const video = $("video"), overlay = $("overlay");
let stream = null;
async function startCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false});
  } catch (e) {
    $("status").textContent = `No camera: ${e.message}` + (window.isSecureContext ? "" : " (a camera needs https or localhost)");
    return;
  }
  video.srcObject = stream;
  await video.play();
  loop();
}
function stopCamera() {
  if (stream) stream.getTracks().forEach(t => t.stop());
  stream = null;
}
async function loop() {
  let frames = 0, since = performance.now();
  while (stream) {
    if (video.readyState >= 2 && video.videoWidth) {
      const reading = await reader.read(video).catch(e => { $("status").textContent = e.message; return null; });
      if (reading) { drawBoxes(reading); show(reading); }
      frames++;
      const now = performance.now();
      if (now - since >= 1000) { $("fps").textContent = `${(frames * 1000 / (now - since)).toFixed(1)} frames/s`; frames = 0; since = now; }
    }
    await new Promise(r => requestAnimationFrame(r));
  }
}
function drawBoxes(reading) {
  overlay.width = video.videoWidth; overlay.height = video.videoHeight;
  const g = overlay.getContext("2d");
  g.lineWidth = Math.max(2, overlay.width / 240); g.strokeStyle = "#2f2"; g.fillStyle = "#2f2";
  g.font = `bold ${Math.max(16, overlay.width / 20)}px system-ui`;
  reading.boxes.forEach(([x, y, w, h], i) => { g.strokeRect(x, y, w, h); g.fillText(reading.digits[i], x, Math.max(y - 4, 16)); });
}
$("start").onclick = startCamera;
$("stop").onclick = stopCamera;
