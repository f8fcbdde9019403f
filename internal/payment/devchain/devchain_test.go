package devchain

import (
	"context"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
)

func TestDevChainServesJSONRPC(t *testing.T) {
	a := common.HexToAddress("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	c, err := Start(Config{Funded: []common.Address{a}, Period: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := ethclient.DialContext(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	id, err := cl.ChainID(ctx)
	if err != nil || id.Uint64() != ChainID {
		t.Fatalf("chain id %v %v", id, err)
	}
	bal, err := cl.BalanceAt(ctx, a, nil)
	if err != nil || bal.Sign() == 0 {
		t.Fatalf("balance %v %v", bal, err)
	}
	for {
		n, err := cl.BlockNumber(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no blocks")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
