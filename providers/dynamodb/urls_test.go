package dynamodb

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/quarkgo/quark/internal/testenv"
	"github.com/quarkgo/quark/persistence"
)

func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	direct := connect(t)
	table := tableName(t, direct)
	u, err := url.Parse(testenv.DynamoDBURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + table
	q := u.Query()
	q.Set("quark_create_schema", "true")
	q.Set("quark_consistent_read", "false")
	q.Set("quark_max_record_bytes", "1000")
	q.Set("max_attempts", "2")
	u.RawQuery = q.Encode()

	s, err := persistence.OpenStore(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	d := s.Driver().(*store)
	if aws.ToString(d.table) != table || aws.ToBool(d.consistent) || d.httpClient == nil || s.MaxRecordBytes() != 1000 {
		t.Errorf("opened store: table %q, consistent %v, owns client %v, max %d; want %q, false, true, 1000",
			aws.ToString(d.table), aws.ToBool(d.consistent), d.httpClient != nil, s.MaxRecordBytes(), table)
	}
	if got := d.client.(*dynamodb.Client).Options().Retryer.MaxAttempts(); got != 2 {
		t.Errorf("client retryer makes %d attempts, want 2", got)
	}
	if _, err := s.Save(ctx, testKey, rec(`{"by":"url"}`), 0); err != nil {
		t.Fatal(err)
	}
	view, err := Open(context.Background(), direct, &Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := view.Load(ctx, testKey); err != nil || string(got.Data) != `{"by":"url"}` {
		t.Errorf("the URL store wrote %q, %v", got.Data, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(persistence.DefaultURLMux().Schemes(), Scheme) {
		t.Errorf("scheme %q is not registered", Scheme)
	}

	// Without quark_create_table, opening does no I/O: a dead endpoint opens.
	s, err = persistence.OpenStore(ctx, "dynamodb://127.0.0.1:1/some_table")
	if err != nil {
		t.Fatalf("opening a dead endpoint without creating the table: %v", err)
	}
	if _, err := s.Load(ctx, testKey); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Load over a dead endpoint = %v, want ErrUnavailable", err)
	}
	s.Close()
}

func TestParseURL(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	parse := func(s string) (ClientOptions, Options, bool) {
		t.Helper()
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		co, o, err := parseURL(u)
		if err != nil {
			t.Fatalf("parseURL(%s): %v", s, err)
		}
		return co, o, o.CreateSchema
	}
	co, o, create := parse("dynamodb://127.0.0.1:8000/app_state?region=eu-west-1&quark_consistent_read=false&quark_create_schema=true&max_backoff=250ms&base_delay=5ms")
	if co.Endpoint != "http://127.0.0.1:8000" || co.Region != "eu-west-1" || o.Table != "app_state" ||
		!o.EventuallyConsistentReads || !create || co.MaxBackoff != 250*time.Millisecond || co.BaseDelay != 5*time.Millisecond {
		t.Errorf("loopback URL: %+v %+v %v", co, o, create)
	}
	co, o, create = parse("dynamodb://localhost:8000")
	if co.Endpoint != "http://localhost:8000" || o.Table != "" || o.EventuallyConsistentReads || create || o.TombstoneRetention != 0 {
		t.Errorf("localhost URL: %+v %+v %v", co, o, create)
	}
	if _, o, _ = parse("dynamodb://localhost:8000/t_1?quark_tombstone_retention=36h"); o.TombstoneRetention != 36*time.Hour {
		t.Errorf("quark_tombstone_retention=36h: TombstoneRetention %v", o.TombstoneRetention)
	}
	co, _, _ = parse("dynamodb://[::1]:8000/t_1")
	if co.Endpoint != "http://[::1]:8000" {
		t.Errorf("IPv6 loopback endpoint %q, want http", co.Endpoint)
	}
	co, _, _ = parse("dynamodb://dynamodb.example.com/t_1?region=eu-west-1")
	if co.Endpoint != "https://dynamodb.example.com" {
		t.Errorf("remote endpoint %q, want https", co.Endpoint)
	}
	co, _, _ = parse("dynamodb://10.1.2.3:8000/t_1?region=eu-west-1&endpoint_scheme=http")
	if co.Endpoint != "http://10.1.2.3:8000" {
		t.Errorf("endpoint_scheme=http: endpoint %q", co.Endpoint)
	}
	co, _, _ = parse("dynamodb://127.0.0.1:8443/t_1?endpoint_scheme=https")
	if co.Endpoint != "https://127.0.0.1:8443" {
		t.Errorf("endpoint_scheme=https on loopback: endpoint %q", co.Endpoint)
	}
	co, o, _ = parse("dynamodb:///prod_state?region=eu-west-1")
	if co.Endpoint != "" || o.Table != "prod_state" {
		t.Errorf("AWS URL: endpoint %q, table %q; want AWS's endpoint", co.Endpoint, o.Table)
	}
	co, _, _ = parse("dynamodb://AKIDEXAMPLE:wJalr%2FSECRET@/t_1?region=eu-west-1&session_token=tok")
	creds, err := co.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKIDEXAMPLE" || creds.SecretAccessKey != "wJalr/SECRET" || creds.SessionToken != "tok" {
		t.Errorf("credentials from the URL: %+v, %v", creds, err)
	}

	// Region and credentials: environment, then loopback defaults.
	c, err := NewClient(ClientOptions{Endpoint: "http://127.0.0.1:8000"})
	if err != nil {
		t.Fatal(err)
	}
	creds, err = c.Options().Credentials.Retrieve(context.Background())
	if c.Options().Region != "us-east-1" || err != nil || creds.AccessKeyID != "quarklocal" {
		t.Errorf("loopback client: region %q, credentials %+v, %v; want us-east-1 and the dummy ones", c.Options().Region, creds, err)
	}
	if _, err := NewClient(ClientOptions{}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("NewClient for AWS without a region = %v, want an invalid option", err)
	}
	if _, err := NewClient(ClientOptions{Region: "eu-west-1"}); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Errorf("NewClient for AWS without credentials = %v, want an invalid option", err)
	}
	for _, ep := range []string{"ftp://127.0.0.1:8000", "127.0.0.1:8000", "http://u:p@127.0.0.1:8000", "http://127.0.0.1:8000/x", "http://h?q=1"} {
		if _, err := NewClient(ClientOptions{Endpoint: ep}); !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("NewClient(Endpoint %q) = %v, want ErrInvalidArgument", ep, err)
		} else if strings.Contains(err.Error(), ":p@") {
			t.Errorf("NewClient(Endpoint %q) reveals the user info: %v", ep, err)
		}
	}
	t.Setenv("AWS_REGION", "ap-south-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	c, err = NewClient(ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err = c.Options().Credentials.Retrieve(context.Background())
	if c.Options().Region != "ap-south-1" || err != nil || creds.AccessKeyID != "AKIDENV" {
		t.Errorf("client from the environment: region %q, credentials %+v, %v", c.Options().Region, creds, err)
	}
}

func TestOpenByURLRejects(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	const secret = "s3cr3tKEYvalue"
	const token = "sessionTOKENvalue"
	base := "dynamodb://AKID:" + secret + "@127.0.0.1:8000"
	for _, u := range []string{
		base + "/ab",
		base + "/a%20b",
		base + "/a;b",
		base + "/t_1/extra",
		base + "/" + strings.Repeat("t", 256),
		base + "/t_1?color=red",
		base + "/t_1?quark_consistent_read=maybe",
		base + "/t_1?quark_create_schema=1x",
		base + "/t_1?quark_max_record_bytes=big",
		base + "/t_1?quark_max_record_bytes=999999999",
		base + "/t_1?max_attempts=-1",
		base + "/t_1?max_backoff=soon",
		base + "/t_1?quark_tombstone_retention=week",
		base + "/t_1?quark_tombstone_retention=-1h",
		base + "/t_1?endpoint_scheme=ftp&session_token=" + token,
		"dynamodb://AKID@127.0.0.1:8000/t_1",
		"dynamodb://:" + secret + "@127.0.0.1:8000/t_1",
		"dynamodb://127.0.0.1:8000/t_1?session_token=" + token,
		"dynamodb:///t_1?endpoint_scheme=http&region=eu-west-1",
		"dynamodb:///t_1",                  // AWS, no region
		"dynamodb:///t_1?region=eu-west-1", // AWS, no credentials
		"dynamodb://127.0.0.1:99999/t_1",   // bad port
		"dynamodb:t_1",                     // opaque
		"dynamodb://AKID:" + secret + "@/t_1?region=eu-west-1&session_token=" + token + "&quark_max_record_bytes=x",
	} {
		s, err := persistence.OpenStore(context.Background(), u)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, persistence.ErrInvalidArgument) {
			t.Errorf("OpenStore(%s) = %v, want ErrInvalidArgument", u, err)
		}
		if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token)) {
			t.Errorf("OpenStore error reveals a secret: %v", err)
		}
	}
}
