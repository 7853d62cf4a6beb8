/* bcryptprimitives.dll for Wine 8.0, which lacks it: Rust 1.78 and later
 * import ProcessPrng from it, so every Rust .exe exits with status
 * c0000135 until this DLL is in the prefix's system32. It forwards to
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. Built by
 * scripts/cross.sh with MinGW-w64; only for running tests under Wine. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
