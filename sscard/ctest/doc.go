// Package ctest proves the national interface library (sscard/) from C:
// its tests build libsscard.so and SSCardDriver.dll (windows/386 and
// windows/amd64) the way `make dll` does, check their export tables, and
// drive driver.c — a C program that dlopens the library like a HIS
// program — against a real agent whose card and PSAM are simulated
// behind pcscd. The package has no code of its own.
package ctest
