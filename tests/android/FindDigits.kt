// The JVM side of tests/test_android_finder.py: for each image path on stdin, one line of what DigitFinder found,
// each digit as "x,y,w,h,line,<784 pixels in hex>" separated by spaces (an empty line for none), or "error: ...".
import edgedigits.finder.DigitFinder
import edgedigits.finder.TooManyMarks
import org.opencv.core.Core
import org.opencv.core.Mat
import org.opencv.imgcodecs.Imgcodecs
import org.opencv.imgproc.Imgproc

fun main() {
    System.loadLibrary(Core.NATIVE_LIBRARY_NAME)
    while (true) {
        val path = readLine() ?: break
        val decoded = Imgcodecs.imread(path, Imgcodecs.IMREAD_UNCHANGED)
        val image = Mat()
        when (decoded.channels()) {  // as a phone's Bitmap gives it: RGBA
            3 -> Imgproc.cvtColor(decoded, image, Imgproc.COLOR_BGR2RGBA)
            4 -> Imgproc.cvtColor(decoded, image, Imgproc.COLOR_BGRA2RGBA)
            else -> decoded.copyTo(image)
        }
        try {
            println(DigitFinder.find(image).joinToString(" ") { d ->
                (d.box.toList() + d.line).joinToString(",") + "," + d.pixels.joinToString("") { "%02x".format(it) }
            })
        } catch (e: TooManyMarks) {
            println("error: ${e.message}")
        }
        decoded.release()
        image.release()
    }
}
