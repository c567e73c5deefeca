package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1433", "TCP address to listen on")
	user := flag.String("user", "", "the only login accepted, with -password")
	password := flag.String("password", "", "if set, the only password accepted (login error 18456 otherwise)")
	verbose := flag.Bool("v", false, "log connection problems and unknown statements")
	flag.Parse()

	logger := log.New(os.Stderr, "tdsstub: ", log.LstdFlags)
	quiet := logger
	if !*verbose {
		quiet = nil
	}
	s := NewServer(quiet)
	s.User, s.Password = *user, *password
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	logger.Printf("listening on %s (TDS 7.4, no encryption; Quark provider statements only)", ln.Addr())
	if err := s.Serve(ln); err != nil {
		logger.Fatal(err)
	}
}
