package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/quarkgo/quark/persistence/driver"
)

func TestErrorCode(t *testing.T) {
	api := func(code, msg string) error {
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "PutItem",
			Err: &smithy.GenericAPIError{Code: code, Message: msg}}
	}
	cancelled := func(codes ...string) error {
		e := &types.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
		for _, c := range codes {
			e.CancellationReasons = append(e.CancellationReasons, types.CancellationReason{Code: aws.String(c)})
		}
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "TransactWriteItems", Err: e}
	}
	status := func(code int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
			Err: errors.New("boom")}
	}
	tests := []struct {
		name string
		err  error
		want driver.ErrorCode
	}{
		{"aborted", fmt.Errorf("read: %w", syscall.ECONNABORTED), driver.Unavailable},
		{"invalid write", fmt.Errorf("%w: x", errInvalidWrite), driver.InvalidArgument},
		{"invalid option", fmt.Errorf("%w: x", errInvalidOption), driver.InvalidArgument},
		{"too large", fmt.Errorf("%w: x", errTooLarge), driver.TooLarge},
		{"outcome unknown", fmt.Errorf("%w: x", errOutcomeUnknown), driver.Unavailable},
		{"provisioned throughput", &types.ProvisionedThroughputExceededException{}, driver.Unavailable},
		{"throttling", api("ThrottlingException", "slow down"), driver.Unavailable},
		{"request limit", &types.RequestLimitExceeded{}, driver.Unavailable},
		{"transaction conflict", &types.TransactionConflictException{}, driver.Unavailable},
		{"transaction in progress", &types.TransactionInProgressException{}, driver.Unavailable},
		{"internal server error", &types.InternalServerError{}, driver.Unavailable},
		{"service unavailable", api("ServiceUnavailable", ""), driver.Unavailable},
		{"throttled after retries", &retry.MaxAttemptsError{Attempt: 3, Err: &types.ProvisionedThroughputExceededException{}}, driver.Unavailable},
		{"retry quota", errors.Join(api("ThrottlingException", ""), errors.New("failed to get rate limit token")), driver.Unavailable},
		{"validation", api("ValidationException", "One or more parameter values were invalid"), driver.InvalidArgument},
		{"item size", api("ValidationException", "Item size has exceeded the maximum allowed size"), driver.TooLarge},
		{"missing table", &types.ResourceNotFoundException{}, driver.Internal},
		{"bad credentials", api("UnrecognizedClientException", "The security token included in the request is invalid"), driver.Internal},
		{"access denied", api("AccessDeniedException", ""), driver.Internal},
		{"HTTP 500", status(500), driver.Unavailable},
		{"HTTP 503 with a code", &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}},
			Err: &smithy.GenericAPIError{Code: "Weird"}}, driver.Unavailable},
		{"HTTP 400", status(400), driver.Internal},
		{"cancelled: conflict", cancelled("None", "TransactionConflict"), driver.Unavailable},
		{"cancelled: throttled", cancelled("ThrottlingError", "None"), driver.Unavailable},
		{"cancelled: validation", cancelled("ValidationError"), driver.InvalidArgument},
		{"cancelled: other", cancelled("TransactionConflict", "ItemCollectionSizeLimitExceeded"), driver.Internal},
		{"refused", &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, driver.Unavailable},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, driver.Unavailable},
		{"EOF", fmt.Errorf("reading: %w", io.EOF), driver.Unavailable},
		{"send error", &smithyhttp.RequestSendError{Err: errors.New("broken")}, driver.Unavailable},
		{"client timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), driver.Unavailable},
		{"canceled", &aws.RequestCanceledError{Err: context.Canceled}, driver.Canceled},
		{"unknown", errors.New("something else"), driver.Internal},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("%s: errorCode(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestOutcomeUnknown(t *testing.T) {
	resp := func(code int, err error) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: err}
	}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"no reply", &smithyhttp.ResponseError{Response: &smithyhttp.Response{}, Err: &smithyhttp.RequestSendError{Err: io.EOF}}, true},
		{"throttled", resp(400, &types.ProvisionedThroughputExceededException{}), false},
		{"condition failed", resp(400, &types.ConditionalCheckFailedException{}), false},
		{"internal server error", resp(500, &types.InternalServerError{}), true},
		{"service unavailable", resp(503, errors.New("unavailable")), true},
		{"network", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
	} {
		if got := outcomeUnknown(tt.err); got != tt.want {
			t.Errorf("%s: outcomeUnknown(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
