using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Running;

if (args is ["store-run", ..])
{
    return Billing.Benchmarks.StoreRunBenchmark.Run(args[1..]);
}

if (args is ["redis-run", ..])
{
    return Billing.Benchmarks.RedisRun.Run(args[1..]);
}

if (args is ["host-load", ..])
{
    return Billing.Benchmarks.HostLoadRun.Run(args[1..]);
}

if (args is ["usage-append-run", ..])
{
    return Billing.Benchmarks.UsageAppendRunBenchmark.Run(args[1..]);
}

var config = ManualConfig.Create(DefaultConfig.Instance)
    .AddDiagnoser(MemoryDiagnoser.Default);

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
return 0;
