//go:build cgo && linux

package localeenv

/*
#include <locale.h>
#include <stdlib.h>

// perfusionRepairCLocale runs when the program is loaded, before any Go
// package initialises: packages that initialise C libraries (GTK, for the
// native file dialogs) may do so before this package's Go init. When the
// C library lacks the locale the environment names, GTK prints "Locale not
// supported by C library" on stderr in every command; naming C.UTF-8 (built
// into glibc 2.35 and newer; older ones fall back to "C" quietly) keeps it
// quiet. The process is left on the "C" locale it starts with.
__attribute__((constructor)) static void perfusionRepairCLocale(void) {
	if (setlocale(LC_ALL, "") == NULL) {
		setenv("LC_ALL", "C.UTF-8", 1);
	}
	setlocale(LC_ALL, "C");
}
*/
import "C"
