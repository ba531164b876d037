module github.com/wsp-project/wsp/plugins/sdk/go

go 1.26
