// Image -> 28x28 MNIST-style digits and their boxes, on Android: firmware_harness/preprocess.py (find_digits) step
// for step on OpenCV's Java API (the OpenCV Android SDK's), as edgedigits/serving/web/digits.js is on OpenCV.js, so
// an app finds the digits `edgedigits predict` finds. tests/test_android_finder.py compiles it with kotlinc against
// Debian's libopencv-java and holds it to Python on phone-like scenes; keep the three in step. Plain Kotlin that
// compiles from Kotlin 1.3 (Debian's) to 2.x (Android Studio's): no collection call whose form changed between.
//
// In an app (OpenCV's Android SDK, org.opencv:opencv 4.x; OpenCVLoader.initLocal() once):
//     val rgba = Mat(); Utils.bitmapToMat(bitmap, rgba)
//     for (digit in DigitFinder.find(rgba)) { val (best, confidence) = reader.read(digit.pixels); /* digit.box */ }
package edgedigits.finder

import org.opencv.core.Core
import org.opencv.core.CvType
import org.opencv.core.Mat
import org.opencv.core.MatOfInt
import org.opencv.core.MatOfPoint
import org.opencv.core.MatOfPoint2f
import org.opencv.core.Point
import org.opencv.core.Rect
import org.opencv.core.Scalar
import org.opencv.core.Size
import org.opencv.imgproc.Imgproc
import java.util.Locale
import kotlin.math.abs
import kotlin.math.log2
import kotlin.math.max
import kotlin.math.min

const val WORK_MAX_SIDE = 1024
const val MNIST_SIZE = 28
const val MAX_MARKS = 1000
private const val WORK_MIN_SIDE = 128
private const val POLARITY_MARGIN = 0.25
private const val LIGHT_INK_MARGIN = 1.5
private const val MAX_TILT = 12.0
private const val FULL_LINE = 0.8
private const val PRINTED = 0.4
private const val SHEET_BORDER = 0.5
private const val SHEET_AREA = 0.2
private const val SHEET_SOLID = 0.9
private const val SHEET_ALONE = 0.25
private const val SHEET_SHADE = 1.0 / 8
private const val EDGE_CUT = 0.1
private const val SLIVER = 0.25
private const val BOX_SIDE = 0.8
private const val BOX_LINE = 0.12
private const val HAIRLINE = 0.1
private const val MIN_SNR = 4.0
private const val NOISE_FLOOR = 4.0
private const val MIN_CONTRAST = 24
private const val SPECK_FRACTION = 0.15
private const val MNIST_BOX = 20
private const val MNIST_STROKE = 0.14
private const val NORMALIZE_SIDE = 64
private const val SPLIT_ASPECT = 1.5
private const val MIN_DIGIT_PX = 12

/** One found digit: [pixels] 28x28 row-major, 0-255, white ink on black (what the snippet's reader.read takes),
 *  [box] x, y, w, h in the input image, [line] its text line (0 = top). */
class Digit(val pixels: IntArray, val box: IntArray, val line: Int)

/** More digit-sized marks than MAX_MARKS: a pattern, not a page of digits; refused in bounded time. */
class TooManyMarks(message: String) : IllegalArgumentException(message)

object DigitFinder {
    /** All digits in an 8-bit RGBA (Utils.bitmapToMat), RGB or gray image, in reading order. */
    fun find(image: Mat, maxSide: Int = WORK_MAX_SIDE): List<Digit> {
        val work = Work()
        try {
            return work.find(image, maxSide)
        } finally {
            work.release()
        }
    }
}

private class Blob(val x0: Int, val y0: Int, val x1: Int, val y1: Int, val labels: IntArray) {
    val w get() = x1 - x0
    val h get() = y1 - y0
}

private class Labels(val count: Int, val labels: IntArray, val stats: IntArray)

private class Found(val labels: IntArray, val blobs: List<Blob>, val areas: IntArray)

private class Item(val x: Int, val y: Int, val w: Int, val h: Int, val mask: IntArray)

private class Line {
    val items = ArrayList<Item>()
    var centerSum = 0.0
    val heights = ArrayList<Int>()  // sorted

    fun add(item: Item) {
        items.add(item)
        centerSum += item.y + item.h / 2.0
        val at = heights.binarySearch(item.h)
        heights.add(if (at < 0) -at - 1 else at, item.h)
    }

    fun medianHeight(): Double = (heights[(heights.size - 1) / 2] + heights[heights.size / 2]) / 2.0
}

/** Python's round(): halves to even, as the Python side rounds sizes and boxes. */
private fun pyRound(v: Double): Int = Math.rint(v).toInt()

private fun median(values: DoubleArray): Double {
    if (values.isEmpty()) return Double.NaN
    val s = values.sortedArray()
    return (s[(s.size - 1) / 2] + s[s.size / 2]) / 2
}

private fun u8(m: Mat): IntArray {
    val bytes = ByteArray((m.total() * m.channels()).toInt())
    if (bytes.isNotEmpty()) m.get(0, 0, bytes)
    return IntArray(bytes.size) { bytes[it].toInt() and 0xFF }
}

private fun s32(m: Mat): IntArray = IntArray((m.total() * m.channels()).toInt()).also { if (it.isNotEmpty()) m.get(0, 0, it) }

private fun f32(m: Mat): FloatArray = FloatArray((m.total() * m.channels()).toInt()).also { if (it.isNotEmpty()) m.get(0, 0, it) }

private fun histogram(values: IntArray): DoubleArray = DoubleArray(256).also { counts -> for (v in values) counts[v]++ }

/** The q-th percentile from a histogram (np.searchsorted on its cumulative sum). */
private fun percentileU8(counts: DoubleArray, q: Double): Int {
    val wanted = q / 100.0 * counts.sum()
    var cumulative = 0.0
    for (i in 0 until 256) {
        cumulative += counts[i]
        if (cumulative >= wanted) return i
    }
    return 256
}

/** Otsu's threshold from a histogram: the level that maximises the between-class variance. */
private fun otsuLevel(counts: DoubleArray): Int {
    var total = 0.0
    var totalMean = 0.0
    for (i in 0 until 256) {
        total += counts[i]; totalMean += i * counts[i]
    }
    if (total == 0.0) return 0
    var weight = 0.0
    var mean = 0.0
    var best = -1.0
    var level = 0
    for (i in 0 until 255) {
        weight += counts[i]; mean += i * counts[i]
        val foreground = total - weight
        if (foreground <= 0 || weight <= 0) continue
        val d = totalMean * weight - mean * total
        val between = d * d / (weight * foreground)
        if (between > best) {
            best = between; level = i
        }
    }
    return level
}

/** The value of rank k (0 = smallest) among 0-255 values, as np.partition(values, k)[k]. */
private fun rankU8(values: IntArray, k: Int): Int {
    val counts = IntArray(256)
    for (v in values) counts[v]++
    var seen = 0
    for (v in 0 until 256) {
        seen += counts[v]
        if (seen > k) return v
    }
    return 255
}

/** The largest fraction of one side of the frame that component i runs along. */
private fun alongBorder(labels: IntArray, width: Int, height: Int, i: Int): Double {
    val sides = IntArray(4)
    for (x in 0 until width) {
        if (labels[x] == i) sides[0]++
        if (labels[(height - 1) * width + x] == i) sides[1]++
    }
    for (y in 0 until height) {
        if (labels[y * width] == i) sides[2]++
        if (labels[y * width + width - 1] == i) sides[3]++
    }
    return maxOf(sides[0].toDouble() / width, sides[1].toDouble() / width, maxOf(sides[2].toDouble() / height, sides[3].toDouble() / height))
}

/** The share of the top, bottom, left and right side of a rows x cols image with ink within `band` of that side. */
private fun sideCover(ink: BooleanArray, cols: Int, rows: Int, band: Int): DoubleArray {
    val cover = IntArray(4)
    for (c in 0 until cols) {
        if ((0 until min(band, rows)).any { ink[it * cols + c] }) cover[0]++
        if ((max(rows - band, 0) until rows).any { ink[it * cols + c] }) cover[1]++
    }
    for (r in 0 until rows) {
        if ((0 until min(band, cols)).any { ink[r * cols + it] }) cover[2]++
        if ((max(cols - band, 0) until cols).any { ink[r * cols + it] }) cover[3]++
    }
    return doubleArrayOf(cover[0].toDouble() / cols, cover[1].toDouble() / cols, cover[2].toDouble() / rows, cover[3].toDouble() / rows)
}

/** Ink near all four sides of a mark's box along half of each: the cheap test before levelling a frame (_framed). */
private fun framed(ink: BooleanArray, cols: Int, rows: Int): Boolean =
    sideCover(ink, cols, rows, max(2, (0.15 * min(rows, cols)).toInt())).reduce(::min) >= 0.5

/** Whether boxes a and b (x0, y0, x1, y1) are pieces of one digit (_one_digit_matrix, one pair). */
private fun oneDigit(a: DoubleArray, b: DoubleArray, typical: Double): Boolean {
    val (ax0, ay0, ax1, ay1) = a
    val (bx0, by0, bx1, by1) = b
    val aw = ax1 - ax0
    val ah = ay1 - ay0
    val bw = bx1 - bx0
    val bh = by1 - by0
    val jw = max(ax1, bx1) - min(ax0, bx0)
    val jh = max(ay1, by1) - min(ay0, by0)
    if (jh > 1.8 * maxOf(ah, bh, typical)) return false
    val overlap = min(ax1, bx1) - max(ax0, bx0)
    val gap = max(ay0, by0) - min(ay1, by1)
    val stacked = overlap >= 0.5 * min(aw, bw) && gap <= 0.5 * max(ah, bh) && jw <= 1.2 * jh
    fun topStroke(x0: Double, y1: Double, x1: Double, w: Double, h: Double, cx0: Double, cy0: Double, cx1: Double, ch: Double): Boolean {
        val near = 0.1 * ch
        return w >= h && h <= 0.5 * ch && cy0 - near <= y1 && y1 <= cy0 + 0.5 * ch && x0 <= cx1 + near &&
            x1 >= cx0 - near && jw <= 1.6 * jh
    }
    return stacked || topStroke(ax0, ay1, ax1, aw, ah, bx0, by0, bx1, bh) || topStroke(bx0, by1, bx1, bw, bh, ax0, ay0, ax1, ah)
}

private fun isLine(b: Blob, typical: Double): Boolean =
    (b.w > 5 * b.h && b.w > 2 * typical) || (b.h > 12 * b.w && b.h > 2 * typical)

private fun typicalHeight(blobs: List<Blob>, areas: IntArray): Double {
    if (blobs.isEmpty()) return 0.0
    val ink = blobs.map { b -> b.labels.fold(0) { sum, i -> sum + areas[i] } }
    val enough = 0.1 * ink.reduce(::max)
    return median(blobs.filterIndexed { k, _ -> ink[k] >= enough }.map { it.h.toDouble() }.toDoubleArray())
}

/** Merge the first pair (in list order) of pieces of one digit, again and again (_merge_pieces). */
private fun mergePieces(found: List<Blob>, typical: Double): List<Blob> {
    val n = found.size
    if (n < 2) return found
    val blobs = found.toMutableList()
    val box = Array(n) { doubleArrayOf(blobs[it].x0.toDouble(), blobs[it].y0.toDouble(), blobs[it].x1.toDouble(), blobs[it].y1.toDouble()) }
    val alive = BooleanArray(n) { true }
    val pairs = BooleanArray(n * n)
    for (i in 0 until n) for (j in i + 1 until n) {
        val v = oneDigit(box[i], box[j], typical)
        pairs[i * n + j] = v; pairs[j * n + i] = v
    }
    fun laterOf(r: Int) = (r + 1 until n).any { pairs[r * n + it] }
    val later = BooleanArray(n) { laterOf(it) }
    var i = later.indexOf(true)
    while (i >= 0) {
        var j = i + 1
        while (!pairs[i * n + j]) j++
        val touched = (0 until n).filter { pairs[it * n + i] || pairs[it * n + j] }.toMutableList()
        val a = blobs[i]
        val b = blobs[j]
        blobs[i] = Blob(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1), a.labels + b.labels)
        box[i] = doubleArrayOf(blobs[i].x0.toDouble(), blobs[i].y0.toDouble(), blobs[i].x1.toDouble(), blobs[i].y1.toDouble())
        alive[j] = false
        for (r in 0 until n) {
            pairs[j * n + r] = false; pairs[r * n + j] = false
        }
        for (r in 0 until n) {
            val v = r != i && alive[r] && oneDigit(box[i], box[r], typical)
            pairs[i * n + r] = v; pairs[r * n + i] = v
            if (v) touched.add(r)
        }
        for (r in touched + listOf(i, j)) later[r] = laterOf(r)
        i = later.indexOf(true)
    }
    return blobs.filterIndexed { k, _ -> alive[k] }
}

/** Column ranges of the digits in a blob's mask: several if it is touching digits, else the whole blob. */
private fun splitTouching(data: IntArray, w: Int, h: Int): List<Pair<Int, Int>> {
    val n = if (w > SPLIT_ASPECT * h) pyRound(w / (0.75 * h)) else 1
    if (n < 2) return listOf(Pair(0, w))
    val ink = IntArray(w)
    for (y in 0 until h) for (x in 0 until w) if (data[y * w + x] > 0) ink[x]++
    val typicalColumn = median(ink.filter { it > 0 }.map { it.toDouble() }.toDoubleArray())
    val cuts = mutableListOf(0)
    val step = w.toDouble() / n
    for (k in 1 until n) {
        val lo = (k * step - 0.25 * step).toInt()
        val hi = max((k * step + 0.25 * step).toInt(), lo + 1)
        var cut = lo
        for (c in lo until hi) if (ink[c] < ink[cut]) cut = c
        if (ink[cut] > 0.5 * typicalColumn) return listOf(Pair(0, w))
        cuts.add(cut)
    }
    cuts.add(w)
    val parts = cuts.zipWithNext()
    for ((a, b) in parts) {
        val rows = (0 until h).filter { y -> (a until b).any { x -> data[y * w + x] > 0 } }
        if (b - a < 0.3 * h || rows.isEmpty() || rows.last() - rows.first() + 1 < 0.65 * h) return listOf(Pair(0, w))
    }
    return parts
}

/** One call's OpenCV work: every Mat it makes is released when the call ends. */
private class Work {
    private val made = ArrayList<Mat>()

    fun <T : Mat> keep(m: T): T = m.also { made.add(it) }
    fun mat(): Mat = keep(Mat())
    fun mat(rows: Int, cols: Int, type: Int): Mat = keep(Mat(rows, cols, type))
    fun zeros(rows: Int, cols: Int): Mat = keep(Mat(rows, cols, CvType.CV_8UC1, Scalar(0.0)))
    fun release() = made.forEach { it.release() }

    fun fromU8(rows: Int, cols: Int, values: IntArray): Mat =
        mat(rows, cols, CvType.CV_8UC1).also { it.put(0, 0, ByteArray(values.size) { p -> values[p].toByte() }) }

    fun fromF32(rows: Int, cols: Int, values: FloatArray): Mat = mat(rows, cols, CvType.CV_32FC1).also { it.put(0, 0, values) }

    fun resize(src: Mat, width: Int, height: Int, interpolation: Int): Mat =
        mat().also { Imgproc.resize(src, it, Size(width.toDouble(), height.toDouble()), 0.0, 0.0, interpolation) }

    fun crop(src: Mat, rect: Rect): Mat = mat().also { keep(src.submat(rect)).copyTo(it) }

    fun ellipse(k: Int): Mat = keep(Imgproc.getStructuringElement(Imgproc.MORPH_ELLIPSE, Size(k.toDouble(), k.toDouble())))

    fun ones(k: Int): Mat = keep(Mat.ones(k, k, CvType.CV_8U))

    fun morph(src: Mat, op: Int, kernel: Mat): Mat = mat().also { Imgproc.morphologyEx(src, it, op, kernel) }

    /** The opening by a w x h rectangle, each side made odd (an even one is anchored off its centre), as _open. */
    fun open(src: Mat, w: Int, h: Int): Mat =
        morph(src, Imgproc.MORPH_OPEN, keep(Imgproc.getStructuringElement(Imgproc.MORPH_RECT, Size((w or 1).toDouble(), (h or 1).toDouble()))))

    fun threshold(src: Mat, level: Double, type: Int): Mat = mat().also { Imgproc.threshold(src, it, level, 255.0, type) }
    fun inverted(src: Mat): Mat = mat().also { Core.bitwise_not(src, it) }
    fun subtract(a: Mat, b: Mat): Mat = mat().also { Core.subtract(a, b, it) }
    fun or(a: Mat, b: Mat): Mat = mat().also { Core.bitwise_or(a, b, it) }
    fun dilate(src: Mat, kernel: Mat): Mat = mat().also { Imgproc.dilate(src, it, kernel) }
    fun warp(src: Mat, turn: Mat, size: Size, flags: Int): Mat = mat().also { Imgproc.warpAffine(src, it, turn, size, flags) }
    fun turn(center: Point, degrees: Double): Mat = keep(Imgproc.getRotationMatrix2D(center, degrees, 1.0))

    fun label(binary: Mat): Labels {
        val labels = mat()
        val stats = mat()
        val count = Imgproc.connectedComponentsWithStats(binary, labels, stats, mat(), 8, CvType.CV_32S)
        return Labels(count, s32(labels), s32(stats))
    }

    fun strokeWidth(binary: Mat): Double {
        if (Core.countNonZero(binary) == 0) return 0.0
        val distance = mat()
        Imgproc.distanceTransform(binary, distance, Imgproc.DIST_L2, 3)
        val inside = f32(distance).filter { it > 0 }.sorted()
        return 2.0 * inside[(0.9 * (inside.size - 1)).toInt()]
    }

    fun find(image: Mat, maxSide: Int): List<Digit> {
        var gray = toGray(image)
        val scale = workingScale(gray.rows(), gray.cols(), maxSide)
        if (scale != 1.0) {
            gray = resize(gray, max(1, pyRound(gray.cols() * scale)), max(1, pyRound(gray.rows() * scale)),
                          if (scale < 1) Imgproc.INTER_AREA else Imgproc.INTER_LINEAR)
        }
        val blurred = mat()
        Imgproc.GaussianBlur(onTheSheet(gray), blurred, Size(3.0, 3.0), 0.0)
        val flat = flattenLight(brightInk(blurred))
        val flatValues = u8(flat)
        val counts = histogram(flatValues)
        if (percentileU8(counts, 99.5) < MIN_CONTRAST) return emptyList()
        val found = components(flat, otsuLevel(counts))
        var blobs = contrasted(found.blobs, found.labels, flatValues, flat.rows(), flat.cols(), found.areas)
        if (blobs.isEmpty()) return emptyList()
        var typical = typicalHeight(blobs, found.areas)
        blobs = blobs.filter { it.h >= SPECK_FRACTION * typical }
        if (blobs.size > MAX_MARKS) {
            throw TooManyMarks(String.format(Locale.ROOT, "%,d digit-sized marks, more than the %,d one image is read for; " +
                                             "crop the image to the digits", blobs.size, MAX_MARKS))
        }
        blobs = mergePieces(blobs, typical)
        typical = typicalHeight(blobs, found.areas)
        blobs = blobs.filter { !isLine(it, typical) && it.h >= max(0.4 * typical, MIN_DIGIT_PX.toDouble()) }
        val items = ArrayList<Item>()
        for (blob in blobs) {
            val mask = mask(found.labels, flat.cols(), blob)
            for ((a, b) in splitTouching(mask, blob.w, blob.h)) {
                val part = IntArray(blob.h * (b - a)) { p -> mask[(p / (b - a)) * blob.w + a + p % (b - a)] }
                if (part.any { it > 0 }) items.add(Item(blob.x0 + a, blob.y0, b - a, blob.h, part))
            }
        }
        return readingOrder(items, scale)
    }

    /** Gray, RGB or RGBA -> gray, alpha composited on white (255 - (255 - gray) * alpha), as to_gray. */
    fun toGray(image: Mat): Mat {
        require(image.depth() == CvType.CV_8U) { "expected an 8-bit image, got OpenCV type ${CvType.typeToString(image.type())}" }
        val gray = mat()
        when (image.channels()) {
            1 -> return image
            3 -> Imgproc.cvtColor(image, gray, Imgproc.COLOR_RGB2GRAY)
            4 -> {
                Imgproc.cvtColor(image, gray, Imgproc.COLOR_RGBA2GRAY)
                val alpha = mat()
                val ink = mat()
                Core.extractChannel(image, alpha, 3)
                Core.multiply(inverted(gray), alpha, ink, 1.0 / 255)
                return inverted(ink)
            }
            else -> throw IllegalArgumentException("expected a gray, RGB or RGBA image, got ${image.channels()} channels")
        }
        return gray
    }

    fun workingScale(rows: Int, cols: Int, maxSide: Int): Double {
        val longSide = max(rows, cols)
        val shortSide = min(rows, cols)
        if (longSide > maxSide) return maxSide.toDouble() / longSide
        if (shortSide < WORK_MIN_SIDE) return min(WORK_MIN_SIDE.toDouble() / shortSide, maxSide.toDouble() / longSide)
        return 1.0
    }

    /** A sheet on a darker desk with the desk painted over in the sheet's own tone; other images as they are. */
    fun onTheSheet(gray: Mat): Mat {
        val height = gray.rows()
        val width = gray.cols()
        val small = resize(gray, max(width / 4, 1), max(height / 4, 1), Imgproc.INTER_AREA)
        val rows = small.rows()
        val cols = small.cols()
        val tones = u8(small)
        val light = u8(threshold(small, 0.0, Imgproc.THRESH_BINARY + Imgproc.THRESH_OTSU))
        var dark = 0
        for (c in 0 until cols) dark += (if (light[c] == 0) 1 else 0) + (if (light[(rows - 1) * cols + c] == 0) 1 else 0)
        for (r in 0 until rows) dark += (if (light[r * cols] == 0) 1 else 0) + (if (light[r * cols + cols - 1] == 0) 1 else 0)
        if (min(rows, cols) < 8 || dark.toDouble() / (2 * (rows + cols)) < SHEET_BORDER || light.all { it == 0 }) return gray
        // each pixel to the side whose tone near it is closer: a shadow across the sheet does not cut its shaded part off
        val reach = max(rows, cols) * SHEET_SHADE
        val sheetTone = localTone(tones, rows, cols, BooleanArray(light.size) { light[it] > 0 }, reach)
        val deskTone = localTone(tones, rows, cols, BooleanArray(light.size) { light[it] == 0 }, reach)
        val shaded = IntArray(light.size) { p ->
            if (sheetTone[p].isFinite() && deskTone[p].isFinite()) (if (2f * tones[p] > sheetTone[p] + deskTone[p]) 255 else 0) else light[p]
        }
        val inside = sheet(tones, rows, cols, shaded) ?: sheet(tones, rows, cols, light) ?: return gray
        val within = BooleanArray(inside.size) { inside[it] > 0 }
        // the sheet's shading carried on past its edge
        val near = localTone(tones, rows, cols, within, max(rows, cols) / 4.0)
        val fallback = median(tones.filterIndexed { p, _ -> within[p] }.map { it.toDouble() }.toDoubleArray()).toFloat()
        val tone = fromF32(rows, cols, FloatArray(near.size) { if (near[it].isFinite()) near[it] else fallback })
        val insideFull = u8(resize(fromU8(rows, cols, inside), width, height, Imgproc.INTER_NEAREST))
        val toneFull = f32(resize(tone, width, height, Imgproc.INTER_LINEAR))
        val values = u8(gray)
        return fromU8(height, width, IntArray(values.size) { p ->
            if (insideFull[p] > 0) values[p] else min(max(toneFull[p], 0f), 255f).toInt()
        })
    }

    /** The sheet's convex hull shrunk by two pixels (0/1) in a quarter-size photo, given its light side (0/255):
     *  the largest light region, large, solid, nearly alone and with a step at its edge; else null (_sheet). */
    fun sheet(tones: IntArray, rows: Int, cols: Int, light: IntArray): IntArray? {
        val (count, labels, stats) = label(fromU8(rows, cols, light)).let { Triple(it.count, it.labels, it.stats) }
        if (count < 2) return null
        var i = 1
        for (k in 2 until count) if (stats[k * 5 + 4] > stats[i * 5 + 4]) i = k
        val area = stats[i * 5 + 4]
        val contours = ArrayList<MatOfPoint>()
        Imgproc.findContours(fromU8(rows, cols, IntArray(labels.size) { if (labels[it] == i) 1 else 0 }), contours, mat(),
                             Imgproc.RETR_EXTERNAL, Imgproc.CHAIN_APPROX_SIMPLE)
        contours.forEach { keep(it) }
        val points = contours.flatMap { it.toList() }
        val indices = keep(MatOfInt())
        Imgproc.convexHull(keep(MatOfPoint(*points.toTypedArray())), indices, false)
        val hull = keep(MatOfPoint(*indices.toArray().map { points[it] }.toTypedArray()))
        val lit = light.count { it > 0 }
        if (area < SHEET_AREA * rows * cols || area < SHEET_SOLID * Imgproc.contourArea(hull) || lit - area > SHEET_ALONE * area) return null
        val filled = zeros(rows, cols)
        Imgproc.fillConvexPoly(filled, hull, Scalar(1.0))
        val shrunk = mat()
        Imgproc.erode(filled, shrunk, ones(5))
        val inside = u8(shrunk)
        val far = u8(dilate(filled, ones(5)))
        val sheet = u8(filled)
        val within = tones.filterIndexed { p, _ -> sheet[p] > 0 && inside[p] == 0 }.map { it.toDouble() }.toDoubleArray()
        val beyond = tones.filterIndexed { p, _ -> far[p] > 0 && sheet[p] == 0 }.map { it.toDouble() }.toDoubleArray()
        // no edge: the light falling off across one sheet, not a sheet's edge on a desk
        if (inside.all { it == 0 } || beyond.isEmpty() || median(within) - median(beyond) < MIN_CONTRAST) return null
        return inside
    }

    /** The mean of `tones` where `where` is set, weighted by a Gaussian of `sigma` round each pixel; infinite where
     *  none is near (_local_tone). */
    fun localTone(tones: IntArray, rows: Int, cols: Int, where: BooleanArray, sigma: Double): FloatArray {
        val weight = mat()
        val total = mat()
        Imgproc.GaussianBlur(fromF32(rows, cols, FloatArray(where.size) { if (where[it]) 1f else 0f }), weight, Size(0.0, 0.0), sigma)
        Imgproc.GaussianBlur(fromF32(rows, cols, FloatArray(where.size) { if (where[it]) tones[it].toFloat() else 0f }), total,
                             Size(0.0, 0.0), sigma)
        val w = f32(weight)
        val t = f32(total)
        return FloatArray(w.size) { if (w[it] > 1e-6f) t[it] / max(w[it], 1e-6f) else Float.POSITIVE_INFINITY }
    }

    /** Ink is the thinner side (bright_ink); where both are as wide, the stronger thin strokes; made bright. */
    fun brightInk(gray: Mat): Mat {
        val half = resize(gray, max(gray.cols() / 2, 1), max(gray.rows() / 2, 1), Imgproc.INTER_AREA)
        val (dark, light) = widths(half)
        if (dark > 0 && light > 0 && abs(log2(dark / light)) >= POLARITY_MARGIN) return if (dark < light) inverted(gray) else gray
        val k = max(3, min(half.rows(), half.cols()) / 16) or 1
        val n = half.rows() * half.cols()
        val top = n - 1 - n / 200
        val darkStrokes = rankU8(u8(morph(half, Imgproc.MORPH_BLACKHAT, ellipse(k))), top)
        val lightStrokes = rankU8(u8(morph(half, Imgproc.MORPH_TOPHAT, ellipse(k))), top)
        return if (lightStrokes > LIGHT_INK_MARGIN * darkStrokes) gray else inverted(gray)  // paper's way unless clearly light
    }

    /** Typical widths of the dark and of the light parts, split by Otsu once the light is evened out (_widths). */
    fun widths(gray: Mat): Pair<Double, Double> {
        val small = resize(gray, max(gray.cols() / 4, 1), max(gray.rows() / 4, 1), Imgproc.INTER_AREA)
        val small32 = mat()
        small.convertTo(small32, CvType.CV_32F)
        val sigma = max(1.0, min(small.rows(), small.cols()) / 8.0)
        val blurred = mat()
        Imgproc.GaussianBlur(small32, blurred, Size(0.0, 0.0), sigma)
        val mean = f32(resize(blurred, gray.cols(), gray.rows(), Imgproc.INTER_LINEAR))
        val values = u8(gray)
        val ratio = fromF32(gray.rows(), gray.cols(), FloatArray(values.size) { values[it] / (mean[it] + 1f) })
        val even = mat()
        Core.normalize(ratio, even, 0.0, 255.0, Core.NORM_MINMAX, CvType.CV_8U)
        val dark = threshold(even, 0.0, Imgproc.THRESH_BINARY_INV + Imgproc.THRESH_OTSU)
        return Pair(strokeWidth(dark), strokeWidth(inverted(dark)))
    }

    /** The background (an opening wider than the strokes, at a quarter of the size) subtracted (flatten_light). */
    fun flattenLight(ink: Mat): Mat {
        val half = resize(ink, max(ink.cols() / 2, 1), max(ink.rows() / 2, 1), Imgproc.INTER_AREA)
        val block = max(3, min(half.rows(), half.cols()) / 2) or 1
        val rough = mat()
        Imgproc.adaptiveThreshold(half, rough, 255.0, Imgproc.ADAPTIVE_THRESH_MEAN_C, Imgproc.THRESH_BINARY, block, -10.0)
        val width = max(2 * strokeWidth(withoutEdgeRegions(rough)), 2.0)
        val small = resize(half, max(half.cols() / 2, 1), max(half.rows() / 2, 1), Imgproc.INTER_AREA)
        val upper = max(3, min(small.rows(), small.cols()) / 2)
        val k = min(max(3 * width / 4, 3.0), upper.toDouble()).toInt() or 1
        val background = resize(morph(small, Imgproc.MORPH_OPEN, ellipse(k)), ink.cols(), ink.rows(), Imgproc.INTER_LINEAR)
        return subtract(ink, background)
    }

    /** The binary without its regions along the frame's edge, unless nothing would be left (_without_edge_regions). */
    fun withoutEdgeRegions(binary: Mat): Mat {
        val found = label(binary)
        val height = binary.rows()
        val width = binary.cols()
        val s = found.stats
        val edge = BooleanArray(found.count) { i ->
            val x = s[i * 5]
            val y = s[i * 5 + 1]
            val w = s[i * 5 + 2]
            val h = s[i * 5 + 3]
            val area = s[i * 5 + 4]
            i > 0 && (x == 0 || y == 0 || x + w == width || y + h == height) && area > 0.05 * height * width &&
                area > 0.25 * w * h && alongBorder(found.labels, width, height, i) > 0.4
        }
        if (edge.none { it } || (1 until found.count).all { edge[it] }) return binary
        val values = u8(binary)
        return fromU8(height, width, IntArray(values.size) { if (edge[found.labels[it]]) 0 else values[it] })
    }

    /** Notebook rules, margins and squares, level or tilted up to MAX_TILT (remove_ruled_lines). */
    fun removeRuledLines(binary: Mat): Mat {
        var pen: Double? = null
        val stroke = { pen ?: strokeWidth(binary).also { pen = it } }  // once, and only if there is a line
        var lines = levelLines(binary, stroke)
        val turned = mat()
        Core.transpose(binary, turned)
        val downTurned = levelLines(turned, stroke)
        if (lines == null && downTurned == null) return binary
        if (downTurned != null) {
            val down = mat()
            Core.transpose(downTurned, down)
            lines = if (lines == null) down else or(lines, down)
        }
        return subtract(binary, lines!!)
    }

    /** The pixels of the thin straight lines running across a 0/255 image, or null (_level_lines). */
    fun levelLines(binary: Mat, stroke: () -> Double): Mat? {
        val height = binary.rows()
        val width = binary.cols()
        val length = max(15, width / 3)
        if (Core.countNonZero(binary) < length) return null
        val tilt = Math.toRadians(MAX_TILT)
        val quarter = threshold(resize(binary, max(width / 4, 1), max(height / 4, 1), Imgproc.INTER_AREA), 0.0, Imgproc.THRESH_BINARY)
        val found = mat()  // the slope, found at a quarter of the size
        Imgproc.HoughLines(quarter, found, 1.0, Math.PI / 720, length / 4, 0.0, 0.0, Math.PI / 2 - tilt, Math.PI / 2 + tilt)
        if (found.rows() == 0) return null
        val slope = Math.toDegrees(found.get(0, 0)[1]) - 90.0
        val center = Point(width / 2.0, height / 2.0)
        val size = Size(width.toDouble(), height.toDouble())
        val level = if (slope == 0.0) binary else warp(binary, turn(center, slope), size, Imgproc.INTER_NEAREST)
        val longRuns = open(level, length, 1)
        if (Core.countNonZero(longRuns) == 0) return null
        val rule = max(3, height / 40)
        var lines = subtract(longRuns, open(level, 1, rule))
        val printed = (PRINTED * stroke()).toInt()
        if (printed > rule) {  // a line across FULL_LINE of the image: printed where it is thinner than PRINTED of a pen
            val full = open(longRuns, (FULL_LINE * width).toInt(), 1)
            if (Core.countNonZero(full) > 0) lines = or(lines, subtract(full, open(level, 1, printed)))
        }
        if (slope != 0.0) {  // back to the image's own slope: every pixel the line touches, a pixel wider
            val back = warp(lines, turn(center, -slope), size, Imgproc.INTER_LINEAR)
            lines = dilate(threshold(back, 0.0, Imgproc.THRESH_BINARY), ones(3))
        }
        return lines
    }

    /** The binary without the frames of form boxes drawn round digits (remove_form_boxes). */
    fun removeFormBoxes(binary: Mat): Mat {
        val found = label(binary)
        val s = found.stats
        val width = binary.cols()
        val candidates = (1 until found.count).filter { i ->
            val w = s[i * 5 + 2]
            val h = s[i * 5 + 3]
            w >= MIN_DIGIT_PX && h >= MIN_DIGIT_PX && s[i * 5 + 4] < 0.75 * w * h
        }
        val covered = candidates.map { s[it * 5 + 2].toLong() * s[it * 5 + 3] }.sum()
        if (candidates.isEmpty() || candidates.size > MAX_MARKS || covered > 4L * binary.rows() * width) return binary
        val values = u8(binary)
        val lines = IntArray(values.size)
        for (i in candidates) {
            val x = s[i * 5]
            val y = s[i * 5 + 1]
            val w = s[i * 5 + 2]
            val h = s[i * 5 + 3]
            val window = BooleanArray(w * h) { p -> found.labels[(y + p / w) * width + x + p % w] == i }
            if (!framed(window, w, h)) continue
            val ink = fromU8(h, w, IntArray(w * h) { p -> values[(y + p / w) * width + x + p % w] })
            val frame = boxFrame(fromU8(h, w, IntArray(w * h) { if (window[it]) 255 else 0 }), ink) ?: continue
            val framePixels = u8(frame)
            for (p in 0 until w * h) if (framePixels[p] > 0) lines[(y + p / w) * width + x + p % w] = 255
        }
        if (lines.all { it == 0 }) return binary
        return subtract(binary, fromU8(binary.rows(), width, lines))
    }

    /** The frame's pixels (0/255) if the mask of one mark is form boxes holding ink, else null (_box_frame). */
    fun boxFrame(mask: Mat, ink: Mat): Mat? {
        val nonZero = keep(MatOfPoint())
        Core.findNonZero(mask, nonZero)
        val points = keep(MatOfPoint2f())
        nonZero.convertTo(points, CvType.CV_32FC2)
        val rect = Imgproc.minAreaRect(points)
        var angle = rect.angle
        var rw = rect.size.width
        var rh = rect.size.height
        while (angle > 45) {
            angle -= 90; rw = rh.also { rh = rw }
        }
        while (angle < -45) {
            angle += 90; rw = rh.also { rh = rw }
        }
        if (abs(angle) > MAX_TILT || min(rw, rh) < MIN_DIGIT_PX) return null
        val pad = max(mask.rows(), mask.cols()) / 4 + 2
        val size = Size((mask.cols() + 2 * pad).toDouble(), (mask.rows() + 2 * pad).toDouble())
        val cx = rect.center.x
        val cy = rect.center.y
        val turn = turn(Point(cx + pad, cy + pad), angle)
        val (level, held) = listOf(mask, ink).map { m ->
            val padded = mat()
            Core.copyMakeBorder(m, padded, pad, pad, pad, pad, Core.BORDER_CONSTANT, Scalar(0.0))
            warp(padded, turn, size, Imgproc.INTER_NEAREST)
        }
        val x0 = max(pyRound(cx + pad - rw / 2), 0)
        val y0 = max(pyRound(cy + pad - rh / 2), 0)
        val x1 = min(x0 + pyRound(rw), size.width.toInt())
        val y1 = min(y0 + pyRound(rh), size.height.toInt())
        if (x1 <= x0 || y1 <= y0) return null
        val roi = Rect(x0, y0, x1 - x0, y1 - y0)
        val box = crop(level, roi)
        val heldBox = crop(held, roi)
        val height = box.rows()
        val width = box.cols()
        val band = max(2, (0.15 * min(height, width)).toInt())
        val across = open(box, max(3, width / 3), 1)
        val down = open(box, 1, max(3, height / 2))
        val a = BooleanArray(width * height).also { lit -> u8(across).forEachIndexed { p, v -> lit[p] = v > 0 } }
        val d = BooleanArray(width * height).also { lit -> u8(down).forEachIndexed { p, v -> lit[p] = v > 0 } }
        val counts = ArrayList<Int>()
        for (c in 0 until width) counts.add((0 until min(band, height)).count { a[it * width + c] })
        for (c in 0 until width) counts.add((max(height - band, 0) until height).count { a[it * width + c] })
        for (r in 0 until height) counts.add((0 until min(band, width)).count { d[r * width + it] })
        for (r in 0 until height) counts.add((max(width - band, 0) until width).count { d[r * width + it] })
        val lit = counts.filter { it > 0 }.map { it.toDouble() }.toDoubleArray()
        val line = if (lit.isNotEmpty()) median(lit).toInt() else 1  // the lines' thickness
        if (line > BOX_LINE * min(height, width)) return null  // a digit's own strokes (a 0 drawn square)
        val coverAcross = sideCover(a, width, height, band)
        val coverDown = sideCover(d, width, height, band)
        if (minOf(coverAcross[0], coverAcross[1], minOf(coverDown[2], coverDown[3])) < BOX_SIDE) return null
        val thick = 2 * line + 2  // a printed line is thinner than this everywhere; where a stroke crosses it, it is not
        val frame = or(subtract(across, open(box, 1, thick)), subtract(down, open(box, thick, 1)))
        val rest = u8(subtract(heldBox, frame))
        var inner = 0
        for (r in band until height - band) for (c in band until width - band) if (rest[r * width + c] > 0) inner++
        if (inner < 0.02 * max(height - 2 * band, 0) * max(width - 2 * band, 0)) return null  // an empty box
        val lines = zeros(size.height.toInt(), size.width.toInt())
        frame.copyTo(keep(lines.submat(roi)))
        val inverse = mat()
        Imgproc.invertAffineTransform(turn, inverse)
        val back = warp(lines, inverse, size, Imgproc.INTER_LINEAR)
        val wide = dilate(threshold(back, 0.0, Imgproc.THRESH_BINARY), ones(3))
        return mat().also { Core.bitwise_and(crop(wide, Rect(pad, pad, mask.cols(), mask.rows())), mask, it) }
    }

    /** Ink components by hysteresis, form boxes and rules taken out first (_components). */
    fun components(flat: Mat, otsu: Int): Found {
        var level = otsu
        var flatNow = flat
        val lit = threshold(flat, 0.5 * level, Imgproc.THRESH_BINARY)
        val unboxed = removeFormBoxes(lit)
        var weak = removeRuledLines(unboxed)
        if (unboxed !== lit) {  // a box's lines are not ink: the ink's level without them, and the ink at that level
            val near = u8(dilate(subtract(lit, unboxed), ones(3)))
            val values = u8(flat)
            val cleared = IntArray(values.size) { if (near[it] > 0) 0 else values[it] }
            flatNow = fromU8(flat.rows(), flat.cols(), cleared)
            level = otsuLevel(histogram(cleared))
            weak = removeRuledLines(removeFormBoxes(threshold(flatNow, 0.5 * level, Imgproc.THRESH_BINARY)))
        }
        val found = label(weak)
        val labels = found.labels
        val s = found.stats
        val values = u8(flatNow)
        val height = flat.rows()
        val width = flat.cols()
        val areas = IntArray(found.count) { s[it * 5 + 4] }
        val minArea = max(12, (2e-5 * height * width).toInt())
        val sure = BooleanArray(found.count)
        for (p in values.indices) if (values[p] > level) sure[labels[p]] = true
        sure[0] = false
        val blobs = ArrayList<Blob>()
        for (i in 0 until found.count) {
            if (areas[i] < minArea || !sure[i]) continue
            val x = s[i * 5]
            val y = s[i * 5 + 1]
            val w = s[i * 5 + 2]
            val h = s[i * 5 + 3]
            val touches = x == 0 || y == 0 || x + w == width || y + h == height
            val longSide = max(w, h)
            val cut = EDGE_CUT * min(height, width)
            if (touches && (longSide < cut || longSide < 2 * cut && min(w, h) < SLIVER * longSide)) continue
            if (touches && alongBorder(labels, width, height, i) > 0.4 && !digitLike(labels, s, i, height, width, found.count)) continue
            blobs.add(Blob(x, y, x + w, y + h, intArrayOf(i)))
        }
        return Found(labels, blobs, areas)
    }

    /** Ink along the frame's edge that is a digit filling the frame, not a page edge, desk, texture or frame (_digit_like). */
    fun digitLike(labels: IntArray, s: IntArray, i: Int, height: Int, width: Int, count: Int): Boolean {
        val x = s[i * 5]
        val y = s[i * 5 + 1]
        val w = s[i * 5 + 2]
        val h = s[i * 5 + 3]
        val area = s[i * 5 + 4]
        if (min(w.toDouble() / width, h.toDouble() / height) < 0.08 || area > 0.85 * w * h) return false
        if (area <= 0.3 * height * width) return true
        val mask = IntArray((h + 2) * (w + 2))
        for (r in 0 until h) for (c in 0 until w) if (labels[(y + r) * width + x + c] == i) mask[(r + 1) * (w + 2) + c + 1] = 255
        val maskMat = fromU8(h + 2, w + 2, mask)
        if (strokeWidth(maskMat) < HAIRLINE * min(w, h)) return false
        val paperLabels = mat()
        Imgproc.connectedComponents(inverted(maskMat), paperLabels, 4, CvType.CV_32S)
        val paper = s32(paperLabels)
        val outside = paper[0]
        val inside = IntArray(count)
        for (r in 0 until h) for (c in 0 until w) {
            val q = paper[(r + 1) * (w + 2) + c + 1]
            if (q > 0 && q != outside) inside[labels[(y + r) * width + x + c]]++
        }
        inside[0] = 0
        inside[i] = 0
        val enough = max(12.0, 0.02 * area)
        return inside.none { it >= enough }  // a frame around other marks: the desk round a sheet
    }

    /** Blobs much fainter than the strongest or than the unlit pixels around them are dropped (_contrasted). */
    fun contrasted(blobs: List<Blob>, labels: IntArray, flat: IntArray, height: Int, width: Int, areas: IntArray): List<Blob> {
        if (blobs.isEmpty()) return blobs
        val sums = DoubleArray(areas.size)
        for (p in labels.indices) sums[labels[p]] += flat[p].toDouble()
        val means = blobs.map { sums[it.labels[0]] / areas[it.labels[0]] }
        val strongest = means.reduce(::max)
        val stride = width + 1
        val level = DoubleArray((height + 1) * stride)
        val count = DoubleArray((height + 1) * stride)
        for (y in 0 until height) {
            var rowLevel = 0.0
            var rowCount = 0.0
            for (x in 0 until width) {
                val p = y * width + x
                if (labels[p] == 0) {
                    rowLevel += flat[p]; rowCount++
                }
                level[(y + 1) * stride + x + 1] = level[y * stride + x + 1] + rowLevel
                count[(y + 1) * stride + x + 1] = count[y * stride + x + 1] + rowCount
            }
        }
        return blobs.filterIndexed { k, b ->
            val x0 = max(b.x0 - b.w, 0)
            val y0 = max(b.y0 - b.h, 0)
            val x1 = min(2 * b.x1 - b.x0, width)
            val y1 = min(2 * b.y1 - b.y0, height)
            fun window(t: DoubleArray) = t[y1 * stride + x1] - t[y0 * stride + x1] - t[y1 * stride + x0] + t[y0 * stride + x0]
            val around = window(level) / max(window(count), 1.0)
            means[k] >= 0.4 * strongest && means[k] >= MIN_SNR * (around + NOISE_FLOOR) && means[k] >= MIN_CONTRAST
        }
    }

    /** The blob's pixels, 0/255, row-major over its box. */
    fun mask(labels: IntArray, cols: Int, b: Blob): IntArray {
        val own = b.labels.toSet()
        return IntArray(b.w * b.h) { p -> if (labels[(b.y0 + p / b.w) * cols + b.x0 + p % b.w] in own) 255 else 0 }
    }

    /** A 0/255 digit mask -> 28x28 in MNIST form: strokes towards MNIST's pen, fitted to 20x20, centred by mass. */
    fun toMnist(item: Item): IntArray {
        val empty = IntArray(MNIST_SIZE * MNIST_SIZE)
        var mask = fromU8(item.h, item.w, item.mask)
        if (Core.countNonZero(mask) == 0) return empty
        mask = crop(mask, Imgproc.boundingRect(mask))
        if (max(mask.rows(), mask.cols()) > NORMALIZE_SIDE) {  // stroke work at a bounded scale
            val scale = NORMALIZE_SIDE.toDouble() / max(mask.rows(), mask.cols())
            val small = resize(mask, max(1, pyRound(mask.cols() * scale)), max(1, pyRound(mask.rows() * scale)), Imgproc.INTER_AREA)
            mask = threshold(small, 127.0, Imgproc.THRESH_BINARY)
            if (Core.countNonZero(mask) == 0) return empty
        }
        val longSide = max(mask.rows(), mask.cols())
        val pad = max(2, longSide / 8)
        val padded = mat()
        Core.copyMakeBorder(mask, padded, pad, pad, pad, pad, Core.BORDER_CONSTANT, Scalar(0.0))
        mask = padded
        val width = strokeWidth(mask)
        val target = MNIST_STROKE * longSide
        if (width < 0.7 * target || width > 1.6 * target) {  // thin pen or fat marker: towards MNIST's pen
            val radius = pyRound(abs(target - width) / 2)
            if (radius != 0) {
                val adjusted = mat()
                if (width < target) Imgproc.dilate(mask, adjusted, ellipse(2 * radius + 1)) else Imgproc.erode(mask, adjusted, ellipse(2 * radius + 1))
                if (Core.countNonZero(adjusted) > 0) mask = adjusted
            }
        }
        mask = crop(mask, Imgproc.boundingRect(mask))
        val scale = MNIST_BOX.toDouble() / max(mask.rows(), mask.cols())
        val fitted = resize(mask, max(1, pyRound(mask.cols() * scale)), max(1, pyRound(mask.rows() * scale)),
                            if (scale < 1) Imgproc.INTER_AREA else Imgproc.INTER_LINEAR)
        val moments = Imgproc.moments(fitted, false)
        if (moments.m00 == 0.0) return empty
        val shift = mat(2, 3, CvType.CV_32F)
        shift.put(0, 0, floatArrayOf(1f, 0f, (MNIST_SIZE / 2 - 0.5 - moments.m10 / moments.m00).toFloat(),
                                     0f, 1f, (MNIST_SIZE / 2 - 0.5 - moments.m01 / moments.m00).toFloat()))
        val out = mat()
        Imgproc.warpAffine(fitted, out, shift, Size(MNIST_SIZE.toDouble(), MNIST_SIZE.toDouble()), Imgproc.INTER_LINEAR,
                           Core.BORDER_CONSTANT, Scalar(0.0))
        return u8(out)
    }

    /** Lines top to bottom, digits left to right (_reading_order); boxes back in the input's pixels. */
    fun readingOrder(found: List<Item>, scale: Double): List<Digit> {
        val lines = ArrayList<Line>()
        for (item in found.sortedBy { it.y + it.h / 2.0 }) {
            val cy = item.y + item.h / 2.0
            val line = lines.firstOrNull { abs(cy - it.centerSum / it.items.size) < 0.5 * max(it.medianHeight(), item.h.toDouble()) }
                ?: Line().also { lines.add(it) }
            line.add(item)
        }
        val digits = ArrayList<Digit>()
        lines.forEachIndexed { number, line ->
            for (item in line.items.sortedBy { it.x }) {
                val box = intArrayOf(item.x, item.y, item.w, item.h).map { pyRound(it / scale) }.toIntArray()
                digits.add(Digit(toMnist(item), box, number))
            }
        }
        return digits
    }
}
