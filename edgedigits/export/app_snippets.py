"""App code that reads one digit with an exported model, generated from its card (and the digit gate's): the
input and output types, shapes, scales and zero points are the files' own.

- Android (Kotlin): LiteRT 2.x's CompiledModel API on the int8 file and the gate, and MediaPipe Tasks'
  ImageClassifier on the app variant (`<name>_mobile.tflite`);
- iOS (Swift): TensorFlowLiteSwift on the int8 file and the gate, and MediaPipe Tasks' ImageClassifier;
- the web (JavaScript): MediaPipe Tasks' ImageClassifier, beside the page.

The LiteRT and TensorFlowLiteSwift code ends in a plain `Scores` object with DigitReader's arithmetic (logits
dequantized, softmax, the best digit's probability times the gate's chance that the mark is a digit), so an
app's confidences are Python's; the tests compile the Kotlin one and run it on the JVM. The platform calls
are not compiled here (no Android or iOS toolchain); each file says so in its first line.

Beside them, `DigitFinder.kt` finds the digits in a photo on Android (OpenCV's Java API), as the page's
digits.js does in the browser: the same file for every model, compiled and held to Python by the tests.
"""

from __future__ import annotations

from pathlib import Path

from edgedigits.export import names
from firmware_harness import contract

ANDROID_FINDER = Path(__file__).with_name("android") / "DigitFinder.kt"
NOT_COMPILED = "not compiled by edgedigits' tests (no Android/iOS toolchain there): check it in your app"
KOTLIN_RUN = "; its Scores object is plain Kotlin, which the tests compile and run"
SWIFT_RUN = "; its Scores enum mirrors the Kotlin one, which the tests run"
LITERT_ANDROID = "com.google.ai.edge.litert:litert:2.3.0"
MEDIAPIPE_ANDROID = "com.google.mediapipe:tasks-vision"  # its current release, matching the MediaPipe you use
MEDIAPIPE_WEB = "@mediapipe/tasks-vision"

# Per input dtype (one pixel p, 0-255, white ink on black -> an element) and per output dtype (raw -> logit).
KOTLIN_INPUT = {"int8": ("ByteArray(784) {{ ({p} - 128).toByte() }}", "writeInt8"),
                "uint8": ("ByteArray(784) {{ {p}.toByte() }}", "writeInt8"),
                "float32": ("FloatArray(784) {{ {p} / 255f }}", "writeFloat")}
KOTLIN_OUTPUT = {"int8": ("ByteArray", "readInt8", "(raw[it] - ({zp})) * {scale}f"),
                 "uint8": ("ByteArray", "readInt8", "((raw[it].toInt() and 0xFF) - ({zp})) * {scale}f"),
                 "float32": ("FloatArray", "readFloat", "raw[it]")}
SWIFT_INPUT = {"int8": "Data(pixels.map {{ UInt8(bitPattern: Int8(Int($0) - 128)) }})",
               "uint8": "Data(pixels)",
               "float32": "pixels.map {{ Float($0) / 255 }}.withUnsafeBufferPointer {{ Data(buffer: $0) }}"}
SWIFT_OUTPUT = {"int8": "raw.map {{ (Float(Int8(bitPattern: $0)) - ({zp})) * {scale} }}",
                "uint8": "raw.map {{ (Float($0) - ({zp})) * {scale} }}",
                "float32": "raw.withUnsafeBytes {{ Array($0.bindMemory(to: Float.self)) }}"}


def _exact(spec: dict) -> bool:
    """True when the integer input is the pixel itself (uint8) or pixel - 128 (int8): scale 1/255."""
    return abs((spec["scale"] or 0) * 255 - 1) < 1e-6 and spec["zero_point"] == {"int8": -128, "uint8": 0}.get(spec["dtype"])


def _quantization(spec: dict) -> str:
    return f"scale {spec['scale']:.6g}, zero point {spec['zero_point']}" if spec.get("scale") else "not quantized"


def _contract(name: str, card: dict) -> str:
    i, o = card["input"], card["output"]
    return (f"{name}.tflite: input {i['dtype']} {i['shape']} ({_quantization(i)}), output {o['dtype']} {o['shape']} "
            f"({_quantization(o)}); sha256 {card['sha256'][:16]}…")


def _kotlin_input(spec: dict, p: str) -> tuple[str, str]:
    """(expression making the input array from pixel `p`, TensorBuffer write method)."""
    array, write = KOTLIN_INPUT[spec["dtype"]]
    if spec["dtype"] != "float32" and not _exact(spec):  # any other input quantization: q = x / scale + zp
        low, high = (-128, 127) if spec["dtype"] == "int8" else (0, 255)
        return (f"ByteArray(784) {{ (({p} / 255f) / {spec['scale']:.8g}f + ({spec['zero_point']}))"
                f".roundToInt().coerceIn({low}, {high}).toByte() }}"), write
    return array.format(p=p), write


def _kotlin_logits(function: str, spec: dict) -> str:
    raw, _, logit = KOTLIN_OUTPUT[spec["dtype"]]
    logit = logit.format(zp=spec.get("zero_point"), scale=f"{spec.get('scale') or 0:.8g}")
    return f"    fun {function}(raw: {raw}): FloatArray = FloatArray(raw.size) {{ {logit} }}"


def kotlin_scores(name: str, card: dict, gate: dict | None) -> str:
    """The plain Kotlin object with DigitReader's arithmetic (no Android in it: the tests run it)."""
    camel = names.camel_identifier(name)
    what = " times the gate's chance that the mark is a digit at all" if gate else ""
    gated = ("        val digitChance = softmax(gateLogits(gateRaw))[" + str(contract.GATE_DIGIT) + "]\n"
             "        return Pair(best, p[best] * digitChance)") if gate else "        return Pair(best, p[best])"
    gate_raw = f", gateRaw: {KOTLIN_OUTPUT[gate['output']['dtype']][0]}" if gate else ""
    return f"""/** DigitReader's arithmetic: logits dequantized, softmax, the best digit's probability{what}. */
object {camel}Scores {{
{_kotlin_logits("logits", card["output"])}
{_kotlin_logits("gateLogits", gate["output"]) if gate else ""}
    fun softmax(x: FloatArray): FloatArray {{
        var top = x[0]
        for (v in x) if (v > top) top = v
        val e = FloatArray(x.size) {{ exp(x[it] - top) }}
        val sum = e.sum()
        return FloatArray(x.size) {{ e[it] / sum }}
    }}

    /** (digit, confidence) from the raw outputs of the digit model{' and the gate' if gate else ''}, as Python's DigitReader gives them. */
    fun read(raw: {KOTLIN_OUTPUT[card["output"]["dtype"]][0]}{gate_raw}): Pair<Int, Float> {{
        val p = softmax(logits(raw))
        var best = 0
        for (i in p.indices) if (p[i] > p[best]) best = i
{gated}
    }}
}}
"""


def has_app_variant(card: dict) -> bool:
    """Whether export writes `<name>_mobile.tflite` beside this file (int8 with int8 ends)."""
    return card.get("format") == "int8" and card.get("io_type") == "int8"


def _files(name: str, card: dict, gate: dict | None) -> str:
    """The model files a snippet loads, in words."""
    files = [f"{name}.tflite"] + ([contract.GATE_FILE] if gate else []) + \
        ([f"{name}_mobile.tflite"] if has_app_variant(card) else [])
    return ", ".join(files[:-1]) + " and " + files[-1] if len(files) > 1 else files[0]


def shipped_gate_card() -> dict | None:
    """The shipped digit gate's card, whose quantization the snippets apply; None if it is not installed."""
    import json

    from firmware_harness.runtime import gate_path

    path = gate_path()
    return json.loads(path.with_suffix(".json").read_text()) if path and path.with_suffix(".json").is_file() else None


def kotlin(name: str, card: dict, gate: dict | None = None) -> str:
    """LiteRT 2.x (CompiledModel) on the int8 file and the gate, MediaPipe's ImageClassifier on the app
    variant (when there is one), and the Scores object."""
    camel = names.camel_identifier(name)
    model_in, model_write = _kotlin_input(card["input"], "pixels[it]")
    read = KOTLIN_OUTPUT[card["output"]["dtype"]][1]
    gate_fields = gate_run = close_gate = ""
    if gate:
        gate_in, gate_write = _kotlin_input(gate["input"], "pixels[it]")
        gate_fields = f"""
    private val gate = CompiledModel.create(assets, "{contract.GATE_FILE}", CompiledModel.Options(Accelerator.CPU))
    private val gateIn = gate.createInputBuffers()
    private val gateOut = gate.createOutputBuffers()"""
        gate_run = f"""
        gateIn[0].{gate_write}({gate_in if gate_in != model_in else "input"})
        gate.run(gateIn, gateOut)"""
        close_gate = "\n        (gateIn + gateOut).forEach { it.close() }\n        gate.close()"
    imports = ["android.content.res.AssetManager", "com.google.ai.edge.litert.Accelerator",
               "com.google.ai.edge.litert.CompiledModel", "kotlin.math.exp"]
    if has_app_variant(card):
        imports += ["android.content.Context", "android.graphics.Bitmap",
                    "com.google.mediapipe.framework.image.BitmapImageBuilder", "com.google.mediapipe.tasks.core.BaseOptions",
                    "com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier"]
    if "roundToInt" in model_in + gate_run:
        imports.append("kotlin.math.roundToInt")
    imports.sort()
    mediapipe_dependency = f" and, for the MediaPipe reader, {MEDIAPIPE_ANDROID} (its current release)" \
        if has_app_variant(card) else ""
    assets = _files(name, card, gate)
    import_lines = "\n".join(f"import {i}" for i in imports)
    return f"""// Generated by edgedigits export; {NOT_COMPILED}{KOTLIN_RUN}.
// {_contract(name, card)}
// Gradle: implementation("{LITERT_ANDROID}"){mediapipe_dependency};
// put {assets} in src/main/assets.
{import_lines}

/** One digit read with LiteRT's CompiledModel API: make it once (it compiles the models), close it when done. */
class {camel}Reader(assets: AssetManager) : AutoCloseable {{
    private val model = CompiledModel.create(assets, "{name}.tflite", CompiledModel.Options(Accelerator.CPU))
    private val modelIn = model.createInputBuffers()
    private val modelOut = model.createOutputBuffers(){gate_fields}

    /** pixels: 784 values 0-255, one 28x28 digit, white ink on black, framed as in MNIST. */
    fun read(pixels: IntArray): Pair<Int, Float> {{
        val input = {model_in}
        modelIn[0].{model_write}(input)
        model.run(modelIn, modelOut){gate_run}
        return {camel}Scores.read(modelOut[0].{read}(){', gateOut[0].' + KOTLIN_OUTPUT[gate['output']['dtype']][1] + '()' if gate else ''})
    }}

    override fun close() {{
        (modelIn + modelOut).forEach {{ it.close() }}
        model.close(){close_gate}
    }}
}}

{_kotlin_mediapipe(name) if has_app_variant(card) else ""}{kotlin_scores(name, card, gate)}"""


def _kotlin_mediapipe(name: str) -> str:
    camel = names.camel_identifier(name)
    return f"""/** The app variant with MediaPipe Tasks: a picture of one digit, dark on light, any size (resized to 28x28). */
class {camel}MediaPipe(context: Context) : AutoCloseable {{
    private val classifier = ImageClassifier.createFromOptions(
        context,
        ImageClassifier.ImageClassifierOptions.builder()
            .setBaseOptions(BaseOptions.builder().setModelAssetPath("{name}_mobile.tflite").build())
            .setMaxResults(1)
            .build())

    /** (digit, probability); no gate here: give it crops the finder found. */
    fun read(digit: Bitmap): Pair<Int, Float> {{
        val best = classifier.classify(BitmapImageBuilder(digit).build())
            .classificationResult().classifications()[0].categories()[0]
        return Pair(best.categoryName().toInt(), best.score())
    }}

    override fun close() = classifier.close()
}}

"""


def _swift_logits(spec: dict) -> str:
    return SWIFT_OUTPUT[spec["dtype"]].format(zp=spec.get("zero_point"), scale=f"{spec.get('scale') or 0:.8g}")


def _swift_input(spec: dict) -> str:
    data = SWIFT_INPUT[spec["dtype"]].format()
    if spec["dtype"] != "float32" and not _exact(spec):  # any other input quantization: q = x / scale + zp
        kind, low, high = ("Int8", -128, 127) if spec["dtype"] == "int8" else ("UInt8", 0, 255)
        q = f"min(max(Int((Float($0) / 255 / {spec['scale']:.8g}).rounded()) + ({spec['zero_point']}), {low}), {high})"
        data = (f"Data(pixels.map {{ UInt8(bitPattern: Int8(truncatingIfNeeded: {q})) }})" if kind == "Int8"
                else f"Data(pixels.map {{ UInt8({q}) }})")
    return data


def swift(name: str, card: dict, gate: dict | None = None) -> str:
    """TensorFlowLiteSwift on the int8 file and the gate (interpreters made and allocated once), MediaPipe's
    ImageClassifier on the app variant, and the Scores enum."""
    camel = names.camel_identifier(name)
    gate_make = gate_run = ""
    if gate:
        gate_make = f"""
    guard let gatePath = Bundle.main.path(forResource: "{contract.GATE_FILE.removesuffix('.tflite')}", ofType: "tflite") else {{
        throw NSError(domain: "edgedigits", code: 1,
                      userInfo: [NSLocalizedDescriptionKey: "{contract.GATE_FILE} is not in the app bundle"])
    }}
    let gate = try Interpreter(modelPath: gatePath)
    try gate.allocateTensors()"""
        gate_run = f"""
    try interpreters.gate.copy({_swift_input(gate["input"])}, toInputAt: 0)
    try interpreters.gate.invoke()
    let gateRaw = try interpreters.gate.output(at: 0).data"""
    pair = "(model: Interpreter, gate: Interpreter)" if gate else "(model: Interpreter, gate: Void)"
    gate_score = (f"""
    static func gateLogits(_ raw: Data) -> [Float] {{ {_swift_logits(gate["output"])} }}""" if gate else "")
    times_gate = f" * softmax(gateLogits(gateRaw))[{contract.GATE_DIGIT}]" if gate else ""
    mediapipe_pod = " and, for the MediaPipe reader, pod 'MediaPipeTasksVision'" if has_app_variant(card) else ""
    imports = "\n".join(f"import {i}" for i in ["Foundation", "TensorFlowLite"]
                        + (["MediaPipeTasksVision", "UIKit"] if has_app_variant(card) else []))
    return f"""// Generated by edgedigits export; {NOT_COMPILED}{SWIFT_RUN}.
// {_contract(name, card)}
// CocoaPods: pod 'TensorFlowLiteSwift'{mediapipe_pod}; add {_files(name, card, gate)} to the app bundle.
{imports}

/// Once, at start-up: the interpreters with their tensors allocated (copying input in before that throws).
func makeDigitInterpreter() throws -> {pair} {{
    guard let path = Bundle.main.path(forResource: "{name}", ofType: "tflite") else {{
        throw NSError(domain: "edgedigits", code: 1,
                      userInfo: [NSLocalizedDescriptionKey: "{name}.tflite is not in the app bundle"])
    }}
    let interpreter = try Interpreter(modelPath: path)
    try interpreter.allocateTensors(){gate_make}
    return (interpreter, {'gate' if gate else '()'})
}}

/// pixels: 784 values 0-255, one 28x28 digit, white ink on black, framed as in MNIST; the interpreters from
/// makeDigitInterpreter(), made once and kept. (digit, confidence) as Python's DigitReader gives them.
func readDigit(_ interpreters: {pair}, pixels: [UInt8]) throws -> (digit: Int, confidence: Float) {{
    try interpreters.model.copy({_swift_input(card["input"])}, toInputAt: 0)
    try interpreters.model.invoke()
    let raw = try interpreters.model.output(at: 0).data{gate_run}
    return {camel}Scores.read(raw{', gateRaw' if gate else ''})
}}

{_swift_mediapipe(name) if has_app_variant(card) else ""}/// DigitReader's arithmetic, as the Kotlin {camel}Scores object has it.
enum {camel}Scores {{
    static func logits(_ raw: Data) -> [Float] {{ {_swift_logits(card["output"])} }}{gate_score}

    static func softmax(_ x: [Float]) -> [Float] {{
        let top = x.max() ?? 0
        let e = x.map {{ exp($0 - top) }}
        let sum = e.reduce(0, +)
        return e.map {{ $0 / sum }}
    }}

    static func read(_ raw: Data{', _ gateRaw: Data' if gate else ''}) -> (digit: Int, confidence: Float) {{
        let p = softmax(logits(raw))
        let best = p.indices.max {{ p[$0] < p[$1] }}!
        return (best, p[best]{times_gate})
    }}
}}
"""


def _swift_mediapipe(name: str) -> str:
    return f"""/// The app variant with MediaPipe Tasks: a picture of one digit, dark on light, any size (resized to 28x28).
func makeDigitClassifier() throws -> ImageClassifier {{
    let options = ImageClassifierOptions()
    options.baseOptions.modelAssetPath = Bundle.main.path(forResource: "{name}_mobile", ofType: "tflite") ?? ""
    options.maxResults = 1
    return try ImageClassifier(options: options)
}}

/// (digit, probability); no gate here: give it crops the finder found.
func classifyDigit(_ classifier: ImageClassifier, _ image: UIImage) throws -> (digit: Int, probability: Float) {{
    let best = try classifier.classify(image: MPImage(uiImage: image)).classificationResult.classifications[0].categories[0]
    return (Int(best.categoryName ?? "") ?? -1, best.score)
}}

"""


def javascript(name: str) -> str:
    """MediaPipe Tasks' ImageClassifier on the app variant, in a web page beside (or instead of) ours."""
    return f"""// Generated by edgedigits export; not run by edgedigits' tests (the page, edgedigits/serving/web, is).
// MediaPipe Tasks for the web on {name}_mobile.tflite: npm install {MEDIAPIPE_WEB}
import {{ FilesetResolver, ImageClassifier }} from "@mediapipe/tasks-vision";

/** Once: the classifier (wasmRoot: where the package's wasm/ folder is served). */
export async function makeDigitClassifier(wasmRoot) {{
  const vision = await FilesetResolver.forVisionTasks(wasmRoot);
  return ImageClassifier.createFromOptions(vision, {{
    baseOptions: {{ modelAssetPath: "{name}_mobile.tflite" }},
    maxResults: 1,
  }});
}}

/** A picture of one digit (an <img>, <canvas> or ImageData), dark on light, any size: {{digit, probability}}.
 * No gate and no finder here: give it crops of one digit (window.edgedigits.read on our page finds them). */
export function classifyDigit(classifier, image) {{
  const best = classifier.classify(image).classifications[0].categories[0];
  return {{ digit: Number(best.categoryName), probability: best.score }};
}}
"""
