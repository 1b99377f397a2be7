package main

import (
	"context"
	"io"
	"os"

	"github.com/onecard-hub/onecard/terminal"
)

const certifyUsage = `[--programme ID] [--fund CODE] (--reader R | --sim FILE) [--psam-reader R2 | --psam FILE] [--journal FILE] [--keys FILE] [--pin-stdin]

Certifies pension eligibility (待遇资格认证): the card is authenticated
(PSAM, or the in-process key service with --keys), the holder enters the
PIN, and third-generation cards sign a fresh terminal challenge with their
SM2 key (verified against the issuer key set). The attestation is journaled
and signed with the terminal key.`

func init() {
	register(command{
		name:    "certify",
		summary: "certify pension eligibility: genuine card + PIN (+ card signature)",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runCertify(ctx, args, os.Stdin, stdout, stderr)
		},
	})
}

func runCertify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("certify", certifyUsage, stderr)
	var tf termFlags
	tf.register(fs, true)
	programme := fs.String("programme", "", "pension scheme or programme `ID`")
	fund := fs.String("fund", "", "fund `CODE`")
	return cardOp(ctx, fs, &tf, args, stdin, stdout, stderr, func() (cardOperation, error) {
		req := terminal.CertifyRequest{Programme: *programme, Fund: *fund}
		return func(ctx context.Context, s *terminal.Session) (*terminal.Receipt, error) { return s.Certify(ctx, req) }, nil
	})
}
